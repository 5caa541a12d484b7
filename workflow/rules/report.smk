localrules:
    report,


# The run's report.html (counts, failed cases, notes, time and memory, volumes, previews) and
# the previews' thumbnails, from the summary and statistics tables.
rule report:
    input:
        **SUMMARY_FILES,
    output:
        report=report(
            str(LAYOUT.report()),
            category="Run",
            caption="../report/run_report.rst",
        ),
        thumbnails=report(
            directory(str(LAYOUT.thumbnails())),
            patterns=["{case}.png"],
            category="QC previews",
            caption="../report/previews.rst",
        ),
    log:
        str(LAYOUT.log("report", "report")),
    conda:
        "../../envs/nnunet.yaml"
    script:
        "../scripts/report.py"
