# Resample a case's logits to its original geometry and write the segmentation atomically.
rule export:
    input:
        batch=case_batch_record,
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.record("export", "{case}", "{attempt}")),
    log:
        str(LAYOUT.log("export", "{case}", "{attempt}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=estimate_mb("export"),
        runtime=estimate_runtime("export"),
    script:
        "../scripts/export.py"
