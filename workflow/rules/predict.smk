# Predict a batch of preprocessed cases with one model load (GPU job).
rule predict:
    input:
        preprocessed=batch_records("preprocess"),
        validated=batch_records("validate"),
    output:
        record=str(LAYOUT.batch_record("{batch}")),
    log:
        str(LAYOUT.log("predict", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: config["predict_threads"]
    resources:
        mem_mb=batch_mb,
        runtime=batch_runtime,
        gpu=predict_gpus(),
    params:
        attempts=batch_attempts,
    script:
        "../scripts/predict.py"
