"""Layer 8 (the top): what the rules' scripts call, from Snakemake's `snakemake` object to the package."""
