"""How large an image file's content is, read from the file system (and a gzip trailer) without decoding it."""

from __future__ import annotations

import os

# Stored (incompressible) deflate data is at most this much larger than its content: 5 bytes a block
# of 64 KiB, plus the gzip header and trailer (with a file name) and a margin.
INCOMPRESSIBLE_SHARE = 0.999
GZIP_FRAME_BYTES = 4096

def uncompressed_bytes(path) -> int:
    """Size of an image file's content: for gzip files the size stored in their trailer, else the file size; for
    a folder of a DICOM series, what its voxels may take in memory."""
    if os.path.isdir(path):
        from .dicom_series import SERIES_EXPANSION, folder_bytes

        return SERIES_EXPANSION * folder_bytes(path)
    size = os.path.getsize(path)
    if not str(path).endswith(".gz") or size < 18:
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        stored = int.from_bytes(handle.read(4), "little")  # ISIZE: the size modulo 2**32
    # ISIZE wraps at 4 GiB: a content smaller than the file means it wrapped, except for data that does not
    # compress, which deflate stores with a few bytes per 64 KiB block more than its content
    while stored < INCOMPRESSIBLE_SHARE * size - GZIP_FRAME_BYTES:
        stored += 2**32
    return stored
