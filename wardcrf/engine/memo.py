"""What the engine works out once per frozen protocol object, kept while that object lives.

A model (`model.freeze`) and its parts are immutable, and a rebuild asks the same questions of them for
every participant and record: the visits a model declares, its calendar, the typer of each field of a
form. Those answers are worth keeping. They are keyed by the object's `id()` (a frozen mapping is not
hashable) with the object itself held beside the answer, so an id reused by a later object never answers
for it; a cache grown past its limit starts again (a process loads a handful of versions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def once_per(cache: dict[int, tuple[Any, T]], owner: object, work: Callable[[], T], *, limit: int = 64) -> T:
    """`work()`'s answer for `owner`, worked out the first time `owner` asks and kept in `cache`."""
    hit = cache.get(id(owner))
    if hit is None or hit[0] is not owner:
        if len(cache) > limit:
            cache.clear()
        hit = cache[id(owner)] = (owner, work())
    return hit[1]
