"""A model's files checked whole before any job, without torch and without running anything they hold.

Every checkpoint the run will load must open as a torch checkpoint (its zip directory, its `data.pkl`, the
keys nnU-Net reads, every tensor's data file at its full size) and may reference no code but what nnU-Net's
trainers write: nnU-Net loads checkpoints with `torch.load(weights_only=False)`, so a pickle naming, say,
`os.system` would run it in the predict job. A `postprocessing.pkl` may reference only nnU-Net's postprocessing
functions. The pickles are read by an unpickler that gives every class and function it is asked for an inert
stand-in (checkpoint_info), so reading one runs nothing; what it was asked for is the list checked. With
`trust_model_code: true` the foreign code check is skipped (never the others)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .checkpoint_info import PLAIN_BUILTINS, Inert, InertUnpickler
from .model import ModelError, ModelInfo

# The globals a checkpoint of nnU-Net's trainers references (torch.save of the trainer's state: the weights'
# tensors and storages, the optimizer's and grad scaler's state, numpy scalars in its logging, torch.device in
# its init_args), and the others torch's own `weights_only` loader accepts for plain tensors and containers.
TORCH_REBUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                    "_rebuild_parameter_with_state", "_rebuild_sparse_tensor", "_rebuild_qtensor",
                    "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass"}
TORCH_DTYPES = {"float16", "float32", "float64", "bfloat16", "half", "float", "double", "complex64", "complex128",
                "uint8", "int8", "int16", "int32", "int64", "bool", "long", "int", "short", "qint8", "quint8",
                "qint32", "float8_e4m3fn", "float8_e5m2"}
TORCH_STORAGE_BYTES = {"FloatStorage": 4, "HalfStorage": 2, "DoubleStorage": 8, "BFloat16Storage": 2,
                       "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
                       "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
                       "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "UntypedStorage": 1}
CHECKPOINT_GLOBALS = frozenset({
    "collections.OrderedDict", "collections.defaultdict", "_codecs.encode",
    *(f"builtins.{name}" for name in PLAIN_BUILTINS | {"complex", "bytearray"}),
    *(f"torch._utils.{name}" for name in TORCH_REBUILDERS),
    "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter", "torch.Tensor", "torch.Size",
    "torch.device", "torch.serialization._get_layout", "torch.strided", "torch.sparse_coo",
    "torch.per_tensor_affine", "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
    *(f"torch.{name}" for name in TORCH_DTYPES | set(TORCH_STORAGE_BYTES)),
    *(f"numpy.{core}.multiarray.{name}" for core in ("core", "_core") for name in ("scalar", "_reconstruct")),
    "numpy.dtype", "numpy.ndarray",
})
# numpy 2 pickles a dtype's class from numpy.dtypes (Float64DType, ...)
NUMPY_DTYPE_MODULE = "numpy.dtypes"
# What nnU-Net's postprocessing.pkl holds: (functions, keyword arguments), the functions nnU-Net's own.
POSTPROCESSING_MODULE = "nnunetv2.postprocessing.remove_connected_components"
POSTPROCESSING_GLOBALS = frozenset({
    "_codecs.encode", "numpy.dtype", *(f"builtins.{name}" for name in PLAIN_BUILTINS),
    *(f"numpy.{core}.multiarray.scalar" for core in ("core", "_core")),
})
# What nnU-Net's predictor reads of every checkpoint (the first fold's trainer and configuration, each fold's
# weights).
CHECKPOINT_KEYS = ("network_weights", "trainer_name", "init_args")
TRUST_HINT = ("loading it would run that code. Use models only from sources you trust; if you trust this one, "
              "set trust_model_code: true")


class _Storage(Inert):
    """Stands in for a torch storage class, remembering its name (for its element size)."""

    name = ""


class _Scanner(InertUnpickler):
    """Unpickles with inert stand-ins (checkpoint_info) and notes every global asked for and every tensor
    storage referenced (its key, class name and element count)."""

    def __init__(self, file):
        super().__init__(file)
        self.globals: set[str] = set()
        self.storages: list[tuple[str, str, int]] = []

    def find_class(self, module, name):
        self.globals.add(f"{module}.{name}")
        if module in ("torch", "torch.storage") and name.endswith("Storage"):
            return type(name, (_Storage,), {"name": name})
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            storage = pid[1]
            name = storage.name if isinstance(storage, type) and issubclass(storage, _Storage) else ""
            self.storages.append((str(pid[2]), name, int(pid[4]) if isinstance(pid[4], int) else 0))
        return None


def _foreign(found: set[str], allowed: frozenset[str], also=lambda name: False) -> list[str]:
    return sorted(name for name in found if name not in allowed and not also(name))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def check_checkpoint(path, trust_code: bool = False) -> None:
    """Refuse (ModelError naming the file and what is wrong) a checkpoint that is not a whole torch checkpoint
    holding what nnU-Net reads, or that references code outside CHECKPOINT_GLOBALS (unless `trust_code`)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelError(f"{path} is not a readable torch checkpoint ({_reason(error)}): the file is truncated or "
                         "corrupted; copy it again from where the model came from") from None
    with archive:
        pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pickles:
            raise ModelError(f"{path} holds no data.pkl: it is a zip archive but not a torch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        try:
            pickled = archive.read(pickles[0])
        except (zipfile.BadZipFile, OSError) as error:
            pickled, unreadable = b"", _reason(error)
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    scanner = _Scanner(io.BytesIO(pickled))
    content, unreadable = _load(scanner) if pickled else (None, unreadable)
    foreign = _foreign(scanner.globals, CHECKPOINT_GLOBALS, _numpy_dtype)
    if foreign and not trust_code:
        raise ModelError(f"{path} references code outside what nnU-Net's trainers write ({', '.join(foreign)}); "
                         f"{TRUST_HINT}")
    if unreadable:
        raise ModelError(f"{path}: its data.pkl cannot be read ({unreadable}): the file is corrupted; copy it "
                         "again from where the model came from")
    if not isinstance(content, dict):
        raise ModelError(f"{path} holds a {type(content).__name__}, not the dict of an nnU-Net checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in content]
    if missing:
        raise ModelError(f"{path} has no {', '.join(missing)}, which nnU-Net reads from a checkpoint: not a "
                         "checkpoint of an nnU-Net v2 trainer")
    if not isinstance(content["init_args"], dict) or "configuration" not in content["init_args"]:
        raise ModelError(f"{path} has no init_args['configuration'], which nnU-Net reads from a checkpoint")
    for key, storage, count in scanner.storages:
        member = f"{prefix}data/{key}"
        needed = count * TORCH_STORAGE_BYTES.get(storage, 1)
        if member not in sizes:
            raise ModelError(f"{path} lacks the tensor data {member}: the file is corrupted")
        if sizes[member] < needed:
            raise ModelError(f"{path}: tensor data {member} holds {sizes[member]:,} bytes of {needed:,}: the "
                             "file is corrupted")


def _load(scanner: _Scanner):
    """(content, None) of the pickle, or (None, why it cannot be read); what it names is in the scanner."""
    try:
        return scanner.load(), None
    except Exception as error:  # noqa: BLE001 - any failure to read it is this file's
        return None, _reason(error)


def _numpy_dtype(name: str) -> bool:
    module, _, cls = name.rpartition(".")
    return module == NUMPY_DTYPE_MODULE and cls.endswith("DType")


def check_postprocessing_pickle(path, trust_code: bool = False) -> None:
    """Refuse a postprocessing.pkl that cannot be read, is not (functions, keyword arguments) of one length,
    or references code but nnU-Net's postprocessing functions (unless `trust_code`)."""
    path = Path(path)
    scanner = _Scanner(io.BytesIO(path.read_bytes()))
    content, unreadable = _load(scanner)
    foreign = _foreign(scanner.globals, POSTPROCESSING_GLOBALS,
                       lambda name: name.rpartition(".")[0] == POSTPROCESSING_MODULE)
    if foreign and not trust_code:
        raise ModelError(f"{path} references code other than nnU-Net's postprocessing functions "
                         f"({', '.join(foreign)}); {TRUST_HINT}")
    if unreadable:
        raise ModelError(f"postprocessing file {path} cannot be read as a pickle ({unreadable})")
    if not (isinstance(content, (tuple, list)) and len(content) == 2
            and all(isinstance(part, (tuple, list)) for part in content) and len(content[0]) == len(content[1])):
        raise ModelError(f"postprocessing file {path} is not nnU-Net's (functions, keyword arguments) pair")


def fold_checkpoints(model: ModelInfo) -> list[Path]:
    """The checkpoint files nnU-Net's predictor loads for the model: each fold's."""
    return [model.folder / f"fold_{fold}" / model.checkpoint for fold in model.folds]


def checkpoints_to_load(model: ModelInfo) -> list[Path]:
    """Every checkpoint file a run of the model loads: each fold's, and its cascade's previous stage's."""
    previous = model.previous_stage
    return fold_checkpoints(model) + (checkpoints_to_load(previous) if previous is not None else [])


def check_model_files(members: tuple[ModelInfo, ...], postprocessing=None, trust_code: bool = False) -> None:
    """Check every checkpoint of a run (each ensemble member's, each cascade's previous stage's) and its
    postprocessing.pkl before any job; an ensemble member's refusal names the member."""
    for index, member in enumerate(members):
        for path in checkpoints_to_load(member):
            try:
                check_checkpoint(path, trust_code)
            except ModelError as error:
                if len(members) == 1:
                    raise
                raise ModelError(f"ensemble member m{index} ({member.folder}): {error}") from None
    if postprocessing:
        check_postprocessing_pickle(postprocessing, trust_code)
