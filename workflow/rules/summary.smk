localrules:
    summary,


# One row per case: status, failing stage, reason, seconds and peak memory per stage, logs,
# plausibility notes; with statistics, one row per case and label in statistics.tsv.
rule summary:
    input:
        manifests=batch_manifests(),
        finished=finished_records(),
    output:
        **{
            name: report(path, category="Run", caption=f"../report/{name}.rst")
            for name, path in SUMMARY_FILES.items()
        },
    log:
        str(LAYOUT.log("summary", "summary")),
    conda:
        "../../envs/nnunet.yaml"
    params:
        attempts=PLAN.attempts,
    script:
        "../scripts/summary.py"
