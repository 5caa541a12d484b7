# A cascade's previous stage (3d_lowres): preprocess, predict and export with that model, the
# segmentations to {results}/3d_lowres/, where the cascade's preprocess reads them.
rule prev_preprocess:
    input:
        validate=rules.validate.output.manifest,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "prev_preprocess")),
    log:
        str(LAYOUT.log("prev_preprocess", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: POLICY.threads("prev_preprocess")
    resources:
        mem_mb=POLICY.mem_mb("prev_preprocess"),
        runtime=POLICY.runtime("prev_preprocess"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"


rule prev_predict:
    input:
        prev_preprocess=rules.prev_preprocess.output.manifest,
        validate=rules.validate.output.manifest,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "prev_predict")),
    log:
        str(LAYOUT.log("prev_predict", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: config["predict_threads"]
    resources:
        mem_mb=POLICY.mem_mb("prev_predict"),
        runtime=POLICY.runtime("prev_predict"),
        gpu=predict_gpus(config["device"]),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"


rule prev_export:
    input:
        prev_predict=rules.prev_predict.output.manifest,
        validate=rules.validate.output.manifest,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "prev_export")),
    log:
        str(LAYOUT.log("prev_export", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: POLICY.threads("prev_export")
    resources:
        mem_mb=POLICY.mem_mb("prev_export"),
        runtime=POLICY.runtime("prev_export"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
