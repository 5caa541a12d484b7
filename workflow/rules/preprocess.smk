# nnU-Net's own preprocessing of the validated cases of a batch, one case at a time in one worker.
rule preprocess:
    input:
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.batch_record("{batch}", "preprocess")),
    log:
        str(LAYOUT.log("preprocess", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=batch_mb("preprocess"),
        runtime=batch_runtime("preprocess"),
    params:
        attempts=batch_attempts,
    script:
        "../scripts/preprocess.py"
