# nnU-Net's own preprocessing of the validated cases of a batch, one case at a time in one worker.
rule preprocess:
    input:
        validate=rules.validate.output.manifest,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "preprocess")),
    log:
        str(LAYOUT.log("preprocess", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("preprocess"),
        runtime=POLICY.runtime("preprocess"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
