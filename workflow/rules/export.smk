# Resample the logits of a batch's cases to their original geometry; write each segmentation atomically.
rule export:
    input:
        predict=rules.predict.output.manifest,
        validate=rules.validate.output.manifest,
    output:
        manifest=str(LAYOUT.manifest("{batch}", "export")),
    log:
        str(LAYOUT.log("export", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    threads: POLICY.threads("export")
    resources:
        mem_mb=POLICY.mem_mb("export"),
        runtime=POLICY.runtime("export"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
