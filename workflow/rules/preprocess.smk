# nnU-Net's own preprocessing of the validated cases of a batch, one case at a time in one worker
# (a cascade stage's also reads its previous stage's segmentations).
rule preprocess:
    input:
        unpack(stage_upstream("preprocess")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "preprocess")),
    log:
        str(LAYOUT.log("preprocess", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: POLICY.threads("preprocess")
    resources:
        mem_mb=POLICY.mem_mb("preprocess"),
        runtime=POLICY.runtime("preprocess"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
