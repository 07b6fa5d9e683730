"""A pause of the cyclic garbage collector for bulk jobs of one process (the CLI's imports, the
benchmarks); never used inside the API server. Standard library only, so importing it costs
nothing (``service.cli.support`` re-exports it).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]

_gc_lock = threading.Lock()
_gc_state = {"holders": 0, "reenable": 0}


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk job of this process (the CLI's imports
    and the benchmark; never inside the API server, where other requests allocate
    meanwhile: nothing under ``service.ingest`` or ``service.api`` pauses it).

    An import creates millions of short-lived strings and tuples; with the collector on, its
    generation scans cost more than building the rows (measured ~3x on the row tuples). The
    records hold no reference cycles; reference counting still frees everything. Nested or
    concurrent pauses share one (a counter); the collector is back on when the last ends.
    """
    with _gc_lock:
        if _gc_state["holders"] == 0:
            _gc_state["reenable"] = int(gc.isenabled())
            gc.disable()
        _gc_state["holders"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["holders"] -= 1
            if _gc_state["holders"] == 0 and _gc_state["reenable"]:
                gc.enable()
