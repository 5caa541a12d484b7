"""The logic of the nnU-Net inference workflow, one folder per layer, bottom to top: store, nnunet | inputs,
estimates, execution, stages, planning, results, entry. Each imports only those below it (the layering contract
in pyproject.toml, checked by `lint-imports`); `dev` holds the demo and benchmark tools, which no layer imports."""
