# Predict a batch of preprocessed cases with one model load (GPU job).
rule predict:
    input:
        preprocess=rules.preprocess.output.manifest,
        validate=rules.validate.output.manifest,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "predict")),
    log:
        str(LAYOUT.log("predict", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: config["predict_threads"]
    resources:
        mem_mb=POLICY.mem_mb("predict"),
        runtime=POLICY.runtime("predict"),
        gpu=predict_gpus(config["device"]),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
