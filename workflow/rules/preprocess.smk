# nnU-Net's own preprocessing of one validated case.
rule preprocess:
    input:
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.record("preprocess", "{case}", "{attempt}")),
    log:
        str(LAYOUT.log("preprocess", "{case}", "{attempt}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=estimate_mb("preprocess"),
        runtime=estimate_runtime("preprocess"),
    script:
        "../scripts/preprocess.py"
