"""What a failed task is called in its record: the kind and the one-line message, from the exception it
raised or from how its worker process died."""

from __future__ import annotations

import signal

# A worker SIGKILLed at or above this share of its reserved memory is reported as out of memory (the
# kernel's OOM killer and SLURM's memory enforcement both send SIGKILL).
OOM_SHARE = 0.9


class CaseError(Exception):
    """A failure caused by the case's data: reported as a sentence, without a traceback in the summary."""

    def __init__(self, message, kind="invalid_input"):
        super().__init__(message)
        self.kind = kind


def error_kind(error: BaseException) -> str:
    if isinstance(error, CaseError):
        return error.kind
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
