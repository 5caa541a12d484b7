# nnU-Net v2 inference: validate -> preprocess -> predict (batched) -> export -> summary
# (a cascade stage: validate -> the previous stage's preprocess, predict, export -> its own;
# an ensemble: each member's preprocess, predict, export -> ensemble;
# with a postprocessing.pkl: -> postprocess; then statistics, output checks and QC previews,
# and with dicom_seg: true, DICOM-SEG).


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/previous_stage.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/dicom_seg.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        rules.summary.output.summary,
        rules.report.output.report,
