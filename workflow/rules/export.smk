# Resample the logits of a batch's cases to their original geometry; write each segmentation atomically.
rule export:
    input:
        predicted=rules.predict.output.record,
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.batch_record("{batch}", "export")),
    log:
        str(LAYOUT.log("export", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=batch_mb("export"),
        runtime=batch_runtime("export"),
    params:
        attempts=batch_attempts,
    script:
        "../scripts/export.py"
