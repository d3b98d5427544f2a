"""The heap after start-up, out of the cyclic garbage collector's way.

What the bot builds to start — its imports, the directory, the templates, the first sync's rooms —
lives as long as the process, and CPython's collector walks all of it at every full collection:
in the middle of an acknowledgement storm one took 140 ms (bench/README.md), and every command
waited for it. Frozen (`gc.freeze`), those objects are never walked again. They are still freed
by reference counting when dropped (a directory replaced by a reload); only a reference cycle
among them would outlive its use, and the bot's long-lived structures hold none worth the walk.
A reload freezes the new directory in turn.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)
AFTER_READY = 10.0  # seconds: the commands waiting at start-up go first


def freeze_heap() -> None:
    """Collect what start-up (or a directory reload) left behind, then freeze what remains."""
    began = time.monotonic()
    gc.collect()
    gc.freeze()
    log.info(
        "heap frozen: %d objects, in %.0f ms",
        gc.get_freeze_count(),
        (time.monotonic() - began) * 1000,
    )
