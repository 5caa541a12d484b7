"""Layer 4: how a stage runs over a batch: the stage protocol, a case's job, the batch runner, supervised workers,
GPU slots and test-only faults. Knows no stage in particular."""
