"""Layer 1 (the bottom): what the workflow keeps on disk and how it names things: where every file lives, stage
records and batch manifests, atomic writes, the run lock, what a failure is called, every stage's name."""
