# Label statistics, output checks and a QC preview of each segmented case of a batch.
rule statistics:
    input:
        unpack(stage_upstream("statistics")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "statistics")),
    log:
        str(LAYOUT.log("statistics", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("statistics"),
        runtime=POLICY.runtime("statistics"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
