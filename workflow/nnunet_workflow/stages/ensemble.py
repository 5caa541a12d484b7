"""Stage `ensemble`: the members' probabilities averaged and turned into a segmentation exactly as
`nnUNetv2_ensemble` does (float32 sum in the members' order, divided by their number; argmax, or the
regions painted in `regions_class_order`; written with the first member's writer and properties), but by
slab: a few planes of every member at a time, never one member's full probabilities, let alone all.
With save_probabilities, the averaged probabilities go to `{results}/{case}.npz` (key `probabilities`) and
`.pkl` as `nnUNetv2_ensemble --save_npz` writes them, streamed class by class and slab by slab into the
archive."""

from __future__ import annotations

import importlib
import math
import os
import pickle
import zipfile

import numpy as np

from ..estimates.host_memory import SLAB_VOXELS  # voxels per slab (all classes of every member are read at once)
from ..execution.job import CaseJob
from ..execution.stage import Stage
from ..nnunet.model import nnunet_plans_manager
from ..store.atomic_files import partial_dir, publish_written
from ..store.layout import member_dir
from ..store.records import StageRecord
from .streaming_export import NpyChannels


def ensemble_case(_state, job: CaseJob) -> dict:
    """Average the members' probabilities of one case by slab, write the segmentation atomically."""
    plans_manager, dataset_json = nnunet_plans_manager(job.model)
    label_manager = plans_manager.get_label_manager(dataset_json)
    members = [NpyChannels(job.member_probabilities(member_dir(i))) for i in range(len(job.ensemble))]
    shape = members[0].shape
    for index, member in enumerate(members[1:], start=1):
        if member.shape != shape:
            raise ValueError(f"member m{index}'s probabilities have shape {member.shape}, member m0's {shape}")
    with open(job.layout.properties(job.id, job.attempt, member_dir(0)), "rb") as handle:
        properties = pickle.load(handle)
    segmentation = np.zeros(shape[1:], dtype=np.uint8 if len(label_manager.foreground_labels) < 255 else np.uint16)
    for start, stop in slabs(shape):
        average = average_slab(members, range(shape[0]), start, stop)
        segmentation[start:stop] = label_manager.convert_probabilities_to_segmentation(average)
    final = job.exported()
    writer = plans_manager.image_reader_writer_class()
    with partial_dir(final) as temp_dir:
        if job.options.save_probabilities:  # published before the segmentation, which marks the case done
            npz, pkl = job.layout.probabilities(job.id)
            write_average_npz(members, f"{temp_dir}/probabilities.npz")
            with open(f"{temp_dir}/probabilities.pkl", "wb") as handle:
                pickle.dump(properties, handle)
            os.replace(f"{temp_dir}/probabilities.npz", npz)
            os.replace(f"{temp_dir}/probabilities.pkl", pkl)
        writer.write_seg(segmentation, f"{temp_dir}/case{job.model.file_ending}", properties)
        beside = publish_written(temp_dir, final, job.id, job.model.file_ending)
    return {"output": str(final), "members": [str(m.folder) for m in job.ensemble],
            **({"also_written": [str(p) for p in beside]} if beside else {})}


def slabs(shape) -> list[tuple[int, int]]:
    """The (start, stop) planes of the first spatial axis read at once: about SLAB_VOXELS voxels per class."""
    rows = max(1, SLAB_VOXELS // max(1, math.prod(shape[2:])))
    return [(start, min(start + rows, shape[1])) for start in range(0, shape[1], rows)]


def average_slab(members: list[NpyChannels], classes, start: int, stop: int) -> np.ndarray:
    """The members' average of these classes and planes, as nnU-Net's average_probabilities computes it:
    float32, summed in the members' order, divided by their number (elementwise, so by slab it is the same)."""
    average = None
    for member in members:
        slab = np.stack([member.slab(k, start, stop) for k in classes])
        if average is None:
            average = slab.astype(np.float32, copy=False)
        else:
            average += slab
    average /= len(members)
    return average


def write_average_npz(members: list[NpyChannels], path: str) -> None:
    """The averaged probabilities as np.savez_compressed(path, probabilities=average) writes them, without the
    average in memory: the array's .npy header, then its bytes in C order (class by class, slab by slab),
    deflated into the archive's one member."""
    shape = members[0].shape
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": tuple(shape)}
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive, \
            archive.open("probabilities.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array_header_1_0(entry, header)
        for k in range(shape[0]):
            for start, stop in slabs(shape):
                entry.write(average_slab(members, (k,), start, stop).tobytes("C"))


def import_ensembling(_model, _options) -> None:
    """Worker setup: import nnU-Net's label handling and writers once for all the cases of a batch."""
    for module in ("nnunetv2.utilities.label_handling.label_handling",
                   "nnunetv2.utilities.plans_handling.plans_handler"):
        importlib.import_module(module)


def remove_member_files(job: CaseJob, record: StageRecord) -> None:
    """Once a case's ensemble is written, its members' probabilities are no longer needed (unless kept)."""
    if record.done and not job.options.keep_intermediates:
        for index in range(len(job.ensemble)):
            job.member_probabilities(member_dir(index)).unlink(missing_ok=True)


ENSEMBLE = Stage("ensemble", handle=ensemble_case, setup=import_ensembling, outputs=lambda job: [job.exported()],
                 after=remove_member_files)
