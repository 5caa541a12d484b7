# Check each case against the model from its headers; record geometry and memory estimates.
rule validate:
    input:
        channels=lambda wildcards: CASES[wildcards.case].files(),
    output:
        record=str(LAYOUT.record("validate", "{case}", "{attempt}")),
    log:
        str(LAYOUT.log("validate", "{case}", "{attempt}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=validate_mb,
        runtime=validate_runtime,
    params:
        channels=case_channels,
        max_job_mb=PLAN.max_job_mem_mb,
    script:
        "../scripts/validate.py"
