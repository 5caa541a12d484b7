"""What a checkpoint says about itself (trainer, configuration, mirroring axes), read without torch.

A `.pth` file of torch is a zip archive whose `data.pkl` holds the checkpoint's dict; its tensors are
references to other files of the archive. Unpickling `data.pkl` with every torch or numpy class replaced
by an inert stand-in gives the dict's plain entries in milliseconds, where importing torch to load it
would cost seconds at every parse of the workflow (and run code from the file)."""

from __future__ import annotations

import builtins
import collections
import io
import pickle
import zipfile
from pathlib import Path

PLAIN_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bool", "slice"}


class Inert:
    """Stands in for any class the checkpoint names (tensors, storages, numpy scalars): takes anything."""

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _inert(*args, **kwargs):
    return Inert()


class InertUnpickler(pickle.Unpickler):
    """Unpickles plain containers as themselves and every other class or function a pickle names as Inert:
    reading a pickle this way runs none of its code."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "builtins" and name in PLAIN_BUILTINS:
            return getattr(builtins, name)
        if name[:1].isupper():
            return Inert
        return _inert

    def persistent_load(self, pid):
        return None


def checkpoint_metadata(path) -> dict:
    """{"trainer_name", "configuration", "mirroring_axes"} as nnU-Net reads them from a checkpoint (None where
    absent); {} when the file is not a torch zip archive (an old or foreign format: nothing to tell)."""
    try:
        with zipfile.ZipFile(Path(path)) as archive:
            name = next(n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            content = InertUnpickler(io.BytesIO(archive.read(name))).load()
    except (OSError, zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, EOFError):
        return {}
    if not isinstance(content, dict):
        return {}
    init_args = content.get("init_args") if isinstance(content.get("init_args"), dict) else {}
    axes = content.get("inference_allowed_mirroring_axes")
    return {"trainer_name": content.get("trainer_name"), "configuration": init_args.get("configuration"),
            "mirroring_axes": None if axes is None else tuple(axes)}
