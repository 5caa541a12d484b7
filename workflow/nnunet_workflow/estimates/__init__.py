"""Layer 3: what a case will cost: memory (host and GPU) and time of each stage from its geometry, what the machine
offers, and what a case needs in a stage from its validate record."""
