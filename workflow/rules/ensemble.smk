# An ensemble (model=[A,B,...]): each member's preprocess, predict and export (of its probabilities)
# with the wildcard `member` (its index in `model`), then the ensemble of their probabilities.
wildcard_constraints:
    member="[0-9]+",


# Each member's stages: the rules of one model's, with the member's wildcard.
use rule preprocess as member_preprocess with:
    input:
        unpack(stage_upstream(stage_names.member_pattern("preprocess"))),
    output:
        manifest=str(
            LAYOUT.manifest("{batch}", stage_names.member_pattern("preprocess"))
        ),
    log:
        str(LAYOUT.log(stage_names.member_pattern("preprocess"), "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb(stage_names.member_pattern("preprocess")),
        runtime=POLICY.runtime(stage_names.member_pattern("preprocess")),


use rule predict as member_predict with:
    input:
        unpack(stage_upstream(stage_names.member_pattern("predict"))),
    output:
        manifest=str(LAYOUT.manifest("{batch}", stage_names.member_pattern("predict"))),
    log:
        str(LAYOUT.log(stage_names.member_pattern("predict"), "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb(stage_names.member_pattern("predict")),
        runtime=POLICY.runtime(stage_names.member_pattern("predict")),
        gpu=predict_gpus(config["device"]),


use rule export as member_export with:
    input:
        unpack(stage_upstream(stage_names.member_pattern("export"))),
    output:
        manifest=str(LAYOUT.manifest("{batch}", stage_names.member_pattern("export"))),
    log:
        str(LAYOUT.log(stage_names.member_pattern("export"), "{batch}")),
    # a member's export keeps its probabilities (streamed slab by slab where streaming_probabilities can)
    threads: POLICY.threads(stage_names.member_pattern("export"))
    resources:
        mem_mb=POLICY.mem_mb(stage_names.member_pattern("export")),
        runtime=POLICY.runtime(stage_names.member_pattern("export")),


rule ensemble:
    input:
        unpack(stage_upstream("ensemble")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "ensemble")),
    log:
        str(LAYOUT.log("ensemble", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("ensemble"),
        runtime=POLICY.runtime("ensemble"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"


# A cascade member's previous stage: the rules of a cascade's, with the member's wildcard
# (its files in work/{case}/a1/m{member}/3d_lowres/ and {results}/m{member}/3d_lowres/).
use rule prev_preprocess as member_prev_preprocess with:
    input:
        unpack(stage_upstream(stage_names.member_pattern("prev_preprocess"))),
    output:
        manifest=str(
            LAYOUT.manifest("{batch}", stage_names.member_pattern("prev_preprocess"))
        ),
    log:
        str(LAYOUT.log(stage_names.member_pattern("prev_preprocess"), "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb(stage_names.member_pattern("prev_preprocess")),
        runtime=POLICY.runtime(stage_names.member_pattern("prev_preprocess")),


use rule prev_predict as member_prev_predict with:
    input:
        unpack(stage_upstream(stage_names.member_pattern("prev_predict"))),
    output:
        manifest=str(
            LAYOUT.manifest("{batch}", stage_names.member_pattern("prev_predict"))
        ),
    log:
        str(LAYOUT.log(stage_names.member_pattern("prev_predict"), "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb(stage_names.member_pattern("prev_predict")),
        runtime=POLICY.runtime(stage_names.member_pattern("prev_predict")),
        gpu=predict_gpus(config["device"]),


use rule prev_export as member_prev_export with:
    input:
        unpack(stage_upstream(stage_names.member_pattern("prev_export"))),
    output:
        manifest=str(
            LAYOUT.manifest("{batch}", stage_names.member_pattern("prev_export"))
        ),
    log:
        str(LAYOUT.log(stage_names.member_pattern("prev_export"), "{batch}")),
    threads: POLICY.threads(stage_names.member_pattern("prev_export"))
    resources:
        mem_mb=POLICY.mem_mb(stage_names.member_pattern("prev_export")),
        runtime=POLICY.runtime(stage_names.member_pattern("prev_export")),
