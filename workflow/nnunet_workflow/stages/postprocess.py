"""Stage `postprocess`: a `postprocessing.pkl` (nnUNetv2_find_best_configuration's, or any made with nnU-Net's
own functions) applied to each exported segmentation, as `nnUNetv2_apply_postprocessing` does: read with the
model's reader, the functions applied in order, written with its writer to `{results}/{case}{file_ending}`.
Export then writes to `{results}/before_postprocessing/`, which is kept."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..execution.job import CaseJob, RunOptions
from ..execution.stage import Stage
from ..nnunet.model import ModelError, ModelInfo, nnunet_plans_manager
from ..nnunet.model_checks import check_postprocessing_pickle
from ..store.atomic_files import partial_dir, publish_written


def check_postprocessing_file(path) -> bool:
    """Whether the run postprocesses (a `postprocessing` file is given); a file that is not there is refused
    at parse time, before any job."""
    if not path:
        return False
    if not Path(path).is_file():
        raise ModelError(f"postprocessing file {path} does not exist (give the postprocessing.pkl that "
                         "nnUNetv2_find_best_configuration wrote, e.g. in crossval_results_folds_0_1_2_3_4/)")
    return True


def load_postprocessing(_model: ModelInfo, options: RunOptions):
    """Worker setup: the (functions, keyword arguments) of the postprocessing.pkl, as nnU-Net's load_pickle
    reads them (the functions are nnU-Net's, imported by the unpickling)."""
    import nnunetv2.postprocessing.remove_connected_components  # noqa: F401

    check_postprocessing_pickle(options.postprocessing, options.trust_model_code)  # as at the run's start
    with open(options.postprocessing, "rb") as handle:
        functions, kwargs = pickle.load(handle)
    return list(functions), list(kwargs)


def postprocess_case(state, job: CaseJob) -> dict:
    """nnU-Net's load_postprocess_save on one case, written atomically (with the writer's other files)."""
    from nnunetv2.postprocessing.remove_connected_components import apply_postprocessing

    functions, kwargs = state
    plans_manager, _ = nnunet_plans_manager(job.model)
    writer = plans_manager.image_reader_writer_class()
    seg, properties = writer.read_seg(str(job.exported()))
    processed = apply_postprocessing(seg[0], functions, kwargs)
    changed = int(np.count_nonzero(processed != seg[0]))
    del seg
    final = job.segmentation()
    with partial_dir(final) as temp_dir:
        writer.write_seg(processed, f"{temp_dir}/case{job.model.file_ending}", properties)
        beside = publish_written(temp_dir, final, job.id, job.model.file_ending)
    return {"output": str(final), "postprocessing": job.options.postprocessing, "voxels_changed": changed,
            "functions": [getattr(f, "__name__", str(f)) for f in functions],
            **({"also_written": [str(p) for p in beside]} if beside else {})}


POSTPROCESS = Stage("postprocess", handle=postprocess_case, needs="export", setup=load_postprocessing,
                    outputs=lambda job: [job.segmentation()])
