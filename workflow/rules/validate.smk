# Check the cases of a batch against the model from their headers; record geometry and memory estimates.
rule validate:
    input:
        channels=batch_channel_files,
    output:
        record=str(LAYOUT.batch_record("{batch}", "validate")),
    log:
        str(LAYOUT.log("validate", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=validate_batch_mb,
        runtime=validate_batch_runtime,
    params:
        attempts=batch_attempts,
        channels=batch_channels,
        max_job_mb=PLAN.max_job_mem_mb,
    script:
        "../scripts/validate.py"
