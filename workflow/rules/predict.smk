# Predict a batch of preprocessed cases with one model load (GPU job).
rule predict:
    input:
        preprocessed=rules.preprocess.output.record,
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.batch_record("{batch}", "predict")),
    log:
        str(LAYOUT.log("predict", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: config["predict_threads"]
    resources:
        mem_mb=batch_mb("predict"),
        runtime=batch_runtime("predict", MODEL_LOAD_S),
        gpu=predict_gpus(),
    params:
        attempts=batch_attempts,
    script:
        "../scripts/predict.py"
