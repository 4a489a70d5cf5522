"""The collector's full passes kept off what a long job found already made (issue 19).

A hub import holds a bundle's events, records and rows while it applies them: tens of thousands of
container objects that live until the bundle ends. Their number triggers Python's full collections, and a
full collection walks every tracked object — the interpreter's modules, the protocol models, every cache —
only to find them alive. Measured over a hub import of 10 × 2,000 events: 2.9–3.8 µs/event of full
collections, 0.3 µs/event with the objects made before the import frozen; over 10,000-event bundles
7–9 µs/event (docs/performance.md, "Why the import's cost grew with the hub" and "The collector's full
passes").

`gc.freeze()` moves what exists when the job starts to the permanent generation, which full passes skip;
the collector stays on, so the job's own garbage (a reference cycle it makes) is still freed as before;
`gc.unfreeze()` when the outermost job ends returns the frozen objects to the oldest generation, where a
later full pass sees them again. Nested or concurrent jobs (the HTTP server's threads) share one freeze,
undone when the last of them ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()
_DEPTH = 0


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Within the block, objects made before it are out of the collector's passes (see the module doc)."""
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            gc.freeze()
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                gc.unfreeze()
