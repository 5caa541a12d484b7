# nnU-Net's own preprocessing of one validated case.
rule preprocess:
    input:
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.record("preprocess", "{case}")),
    log:
        str(LAYOUT.log("preprocess", "{case}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=estimate("preprocess", "mb"),
    script:
        "../scripts/preprocess.py"
