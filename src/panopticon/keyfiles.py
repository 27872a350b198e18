"""Secret files kept in ``home`` (the web signing key, the credential encryption key):
created once, readable by their owner only (0600), never overwritten."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["private_dir", "read_or_create"]


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) as a directory only its owner may enter (0700)."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's content; created with ``make()`` (0600, atomically: another process may
    be creating it at the same moment, and the first one wins) when it does not exist."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    value = make()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value
