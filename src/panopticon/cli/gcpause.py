"""Start-up without garbage-collection passes.

Importing libraries and loading a suite allocate a great many long-lived objects; the cyclic
GC runs dozens of times meanwhile and finds nothing to free. Pausing it, then freezing what
was allocated (it lives until exit), saves a good share of each command's start-up
(bench/README.md). Interfaces only: the library never changes the collector's settings.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["startup"]


@contextmanager
def startup() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
