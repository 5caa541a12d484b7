"""Layer 6: a run as a whole: its stages in order, the run resolved once, the plan of attempts and batches,
provenance, the resource policy, the batch size, the config's coercion, where jobs run."""
