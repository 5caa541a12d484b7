# nnU-Net's postprocessing (a postprocessing.pkl) of a batch's exported segmentations.
rule postprocess:
    input:
        unpack(stage_upstream("postprocess")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "postprocess")),
    log:
        str(LAYOUT.log("postprocess", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("postprocess"),
        runtime=POLICY.runtime("postprocess"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
