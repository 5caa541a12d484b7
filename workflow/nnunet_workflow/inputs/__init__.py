"""Layer 2: the cases a run is given: finding them in a folder or sample sheet, reading their headers and files
(through the model's reader), DICOM series, sizes on disk, plausibility against the training data."""
