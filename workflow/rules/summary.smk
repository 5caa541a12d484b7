localrules:
    summary,


# One row per case: status, failing stage, reason, seconds and peak memory per stage, logs.
rule summary:
    input:
        manifests=batch_manifests(),
        finished=finished_records(),
    output:
        summary=str(LAYOUT.summary()),
    log:
        str(LAYOUT.log("summary", "summary")),
    conda:
        "../../envs/nnunet.yaml"
    params:
        attempts=PLAN.attempts,
    script:
        "../scripts/summary.py"
