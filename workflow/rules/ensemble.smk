# An ensemble (model=[A,B,...]): each member's preprocess, predict and export (of its probabilities)
# with the wildcard `member` (its index in `model`), then the ensemble of their probabilities.
wildcard_constraints:
    member="[0-9]+",


# Each member's stages: the rules of one model's, with the member's wildcard.
use rule preprocess as member_preprocess with:
    input:
        unpack(stage_upstream("m{member}_preprocess")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_preprocess")),
    log:
        str(LAYOUT.log("m{member}_preprocess", "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb("m{member}_preprocess"),
        runtime=POLICY.runtime("m{member}_preprocess"),


use rule predict as member_predict with:
    input:
        unpack(stage_upstream("m{member}_predict")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_predict")),
    log:
        str(LAYOUT.log("m{member}_predict", "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb("m{member}_predict"),
        runtime=POLICY.runtime("m{member}_predict"),
        gpu=predict_gpus(config["device"]),


use rule export as member_export with:
    input:
        unpack(stage_upstream("m{member}_export")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_export")),
    log:
        str(LAYOUT.log("m{member}_export", "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb("m{member}_export"),
        runtime=POLICY.runtime("m{member}_export"),


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
        unpack(stage_upstream("m{member}_prev_preprocess")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_prev_preprocess")),
    log:
        str(LAYOUT.log("m{member}_prev_preprocess", "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb("m{member}_prev_preprocess"),
        runtime=POLICY.runtime("m{member}_prev_preprocess"),


use rule prev_predict as member_prev_predict with:
    input:
        unpack(stage_upstream("m{member}_prev_predict")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_prev_predict")),
    log:
        str(LAYOUT.log("m{member}_prev_predict", "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb("m{member}_prev_predict"),
        runtime=POLICY.runtime("m{member}_prev_predict"),
        gpu=predict_gpus(config["device"]),


use rule prev_export as member_prev_export with:
    input:
        unpack(stage_upstream("m{member}_prev_export")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_prev_export")),
    log:
        str(LAYOUT.log("m{member}_prev_export", "{batch}")),
    resources:
        mem_mb=POLICY.mem_mb("m{member}_prev_export"),
        runtime=POLICY.runtime("m{member}_prev_export"),
