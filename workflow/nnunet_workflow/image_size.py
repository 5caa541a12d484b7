"""How large an image file's content is, read from the file system (and a gzip trailer) without decoding it."""

from __future__ import annotations

import os


def uncompressed_bytes(path) -> int:
    """Size of an image file's content: for gzip files the size stored in their trailer, else the file size."""
    size = os.path.getsize(path)
    if not str(path).endswith(".gz") or size < 18:
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        stored = int.from_bytes(handle.read(4), "little")  # ISIZE: the size modulo 2**32
    while stored < size:
        stored += 2**32
    return stored
