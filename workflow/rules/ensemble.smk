# An ensemble (model=[A,B,...]): each member's preprocess, predict and export (of its probabilities)
# with the wildcard `member` (its index in `model`), then the ensemble of their probabilities.
wildcard_constraints:
    member="[0-9]+",


rule member_preprocess:
    input:
        unpack(member_upstream(None)),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_preprocess")),
    log:
        str(LAYOUT.log("m{member}_preprocess", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("m{member}_preprocess"),
        runtime=POLICY.runtime("m{member}_preprocess"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"


rule member_predict:
    input:
        unpack(member_upstream("preprocess")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_predict")),
    log:
        str(LAYOUT.log("m{member}_predict", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: config["predict_threads"]
    resources:
        mem_mb=POLICY.mem_mb("m{member}_predict"),
        runtime=POLICY.runtime("m{member}_predict"),
        gpu=predict_gpus(config["device"]),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"


rule member_export:
    input:
        unpack(member_upstream("predict")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "m{member}_export")),
    log:
        str(LAYOUT.log("m{member}_export", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("m{member}_export"),
        runtime=POLICY.runtime("m{member}_export"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"


rule ensemble:
    input:
        unpack(ensemble_upstream),
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
