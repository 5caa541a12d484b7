# One row per case: status, failing stage, reason, seconds and peak memory per stage, logs.
rule summary:
    input:
        exported=expand(str(LAYOUT.record("export", "{case}")), case=sorted(CASES)),
    output:
        summary=str(LAYOUT.summary()),
    log:
        str(LAYOUT.log("summary", "summary")),
    conda:
        "../../envs/nnunet.yaml"
    params:
        batches=BATCHES,
    script:
        "../scripts/summary.py"


onsuccess:
    print_brief(LAYOUT.summary())
