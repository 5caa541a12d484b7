"""Failure kinds and messages: from exceptions, and from how a worker died (the OOM classification)."""

import errno
import signal

import pytest

from nnunet_workflow.store.failures import (
    OOM_SHARE,
    CaseError,
    death_kind_and_message,
    error_kind,
    error_message,
    no_space_message,
)


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (matched by name, so torch is not imported)."""


@pytest.mark.parametrize("error, kind, message", [
    (CaseError("c1_0000.nii.gz: file is empty"), "invalid_input", "c1_0000.nii.gz: file is empty"),
    (CaseError("needs 9 GB", kind="out_of_memory"), "out_of_memory", "needs 9 GB"),
    (MemoryError(), "out_of_memory", "ran out of memory (MemoryError)"),
    (MemoryError("Unable to allocate 3 GiB"), "out_of_memory",
     "ran out of memory (MemoryError: Unable to allocate 3 GiB)"),
    (OutOfMemoryError("CUDA out of memory.\nTried to allocate"), "gpu_out_of_memory",
     "OutOfMemoryError: CUDA out of memory."),
    (IndexError("index 1 is out of bounds"), "error", "IndexError: index 1 is out of bounds"),
])
def test_exceptions_become_a_kind_and_one_line(error, kind, message):
    assert (error_kind(error), error_message(error)) == (kind, message)


def test_a_sigkill_at_the_reservation_is_out_of_memory_and_below_it_killed():
    kill = -signal.SIGKILL
    at_limit = OOM_SHARE * 1000
    assert death_kind_and_message(kill, at_limit, 1000) == (
        "out_of_memory", "worker process died (signal SIGKILL) at 900 MB of 1000 MB reserved")
    assert death_kind_and_message(kill, at_limit - 1, 1000) == ("killed", "worker process died (signal SIGKILL)")
    assert death_kind_and_message(kill, 5000, None)[0] == "killed"  # nothing reserved: no way to tell
    assert death_kind_and_message(kill, None, 1000)[0] == "killed"


def test_other_deaths_are_errors_with_their_signal_or_status():
    assert death_kind_and_message(-signal.SIGSEGV, 999, 1000) == ("error", "worker process died (signal SIGSEGV)")
    assert death_kind_and_message(3, 999, 1000) == ("error", "worker process died (exit status 3)")


def test_a_full_disk_is_its_own_kind_however_it_is_said():
    assert error_kind(OSError(errno.ENOSPC, "No space left on device", "/r/x.npy")) == "no_space"
    assert error_kind(OSError(errno.EDQUOT, "Disk quota exceeded")) == "no_space"
    assert error_kind(OSError("677376 requested and 405440 written")) == "no_space"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as cause:
            raise RuntimeError("Could not write the image") from cause
    except RuntimeError as wrapped:
        assert error_kind(wrapped) == "no_space"
    assert error_kind(OSError(errno.EACCES, "Permission denied")) == "error"
    assert no_space_message("/nonexistent/results", "OSError: x").startswith(
        "not enough space on the filesystem of /nonexistent/results (")
