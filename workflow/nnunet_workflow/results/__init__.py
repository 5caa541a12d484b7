"""Layer 7: what a run reports: the summary table, the statistics table, the report and progress lines."""
