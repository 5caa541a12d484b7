"""What a failed task is called in its record: the kind and the one-line message, from the exception it
raised or from how its worker process died."""

from __future__ import annotations

import errno
import re
import shutil
import signal
from pathlib import Path

# A worker SIGKILLed at or above this share of its reserved memory is reported as out of memory (the
# kernel's OOM killer and SLURM's memory enforcement both send SIGKILL).
OOM_SHARE = 0.9


# The kind of a failure for want of disk space (ENOSPC, a quota, numpy's short write on a full disk).
NO_SPACE = "no_space"
# numpy's ndarray.tofile/np.save on a full filesystem: "OSError: 677376 requested and 405440 written"
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_no_space(error: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the filesystem is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if _SHORT_WRITE.search(str(error)) or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def free_mb(folder) -> int | None:
    """Free space (MB) of the filesystem of `folder` (of its nearest existing parent), or None."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free // 2**20
    except OSError:
        return None


def no_space_message(folder, detail: str) -> str:
    """The sentence of a case that failed for want of space: the folder, its free space now, what failed."""
    free = free_mb(folder)
    now = f"{free:,} MB free there now" if free is not None else "its free space unknown"
    return (f"not enough space on the filesystem of {folder} ({now}): {detail}; free space there (or give "
            "another results=) and run again")


class CaseError(Exception):
    """A failure caused by the case's data: reported as a sentence, without a traceback in the summary."""

    def __init__(self, message, kind="invalid_input"):
        super().__init__(message)
        self.kind = kind


def error_kind(error: BaseException) -> str:
    if isinstance(error, CaseError):
        return error.kind
    if is_no_space(error):
        return NO_SPACE
    if isinstance(error, MemoryError):
        return "out_of_memory"
    if type(error).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
        return "gpu_out_of_memory"
    return "error"


def last_line(error: BaseException, default: str = "unknown reason") -> str:
    """The last line of a library's error (ITK's and nnU-Net readers' end with the reason), or `default`."""
    text = str(error).strip()
    return text.splitlines()[-1] if text else default


def error_message(error: BaseException) -> str:
    """One line for the summary: the sentence of a data error, else the exception type and text."""
    if isinstance(error, CaseError):
        return str(error)
    if isinstance(error, MemoryError):
        return f"ran out of memory (MemoryError{': ' + str(error) if str(error) else ''})"
    return f"{type(error).__name__}: {error}".splitlines()[0]


def death_kind_and_message(exit_code: int | None, peak_mb: float | None,
                           reserved_mb: int | None) -> tuple[str, str]:
    """Kind and message of a worker that died without reporting: `out_of_memory` when SIGKILLed at or
    near its reserved memory, `killed` for another SIGKILL, else `error` with the signal or exit status."""
    if exit_code is not None and exit_code < 0:
        reason = f"signal {signal.Signals(-exit_code).name}"
    else:
        reason = f"exit status {exit_code}"
    message = f"worker process died ({reason})"
    if exit_code != -signal.SIGKILL:
        return "error", message
    if reserved_mb and peak_mb and peak_mb >= OOM_SHARE * reserved_mb:
        return "out_of_memory", message + f" at {peak_mb:.0f} MB of {reserved_mb} MB reserved"
    return "killed", message
