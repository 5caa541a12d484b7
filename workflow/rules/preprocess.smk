# nnU-Net's own preprocessing of one validated case.
rule preprocess:
    input:
        validated=rules.validate.output.record,
    output:
        record=str(LAYOUT.record("preprocess", "{case}")),
    resources:
        mem_mb=estimate("preprocess", "mb"),
    log:
        str(LAYOUT.log("preprocess", "{case}")),
    conda:
        "../../envs/nnunet.yaml"
    script:
        "../scripts/preprocess.py"
