"""Layer 2: what the workflow knows of nnU-Net's own files: a trained-model folder, its checkpoint, a dataset folder's
recommended setup, and the files nnUNetv2_predict leaves beside its segmentations. Beside `inputs`, not above it."""
