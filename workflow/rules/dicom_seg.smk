# DICOM-SEG of each segmented case of a batch whose input has a DICOM series channel (dicom_seg: true).
rule dicom_seg:
    input:
        unpack(stage_upstream("dicom_seg")),
    output:
        manifest=str(LAYOUT.manifest("{batch}", "dicom_seg")),
    log:
        str(LAYOUT.log("dicom_seg", "{batch}")),
    conda:
        "../../envs/nnunet.yaml"
    resources:
        mem_mb=POLICY.mem_mb("dicom_seg"),
        runtime=POLICY.runtime("dicom_seg"),
    params:
        cases=batch_cases,
    script:
        "../scripts/stage.py"
