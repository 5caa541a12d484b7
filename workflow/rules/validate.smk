# Check the cases of a batch against the model; record their geometry and memory and time estimates.
rule validate:
    input:
        channels=batch_channel_files,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "validate")),
    log:
        str(LAYOUT.log("validate", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("validate"),
        runtime=POLICY.runtime("validate"),
    params:
        cases=batch_cases,
        max_job_mb=PLAN.max_job_mem_mb,
    script:
        "../scripts/stage.py"
