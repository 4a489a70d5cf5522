"""Progress reporting for long exports, independent of any terminal library.

Domain code calls `start` and `advance`; the CLI passes a rich progress bar,
tests and the TUI pass nothing (`NullProgress`).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def start(self, task: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


class CountingProgress:
    """Remembers what was reported (tests, benchmarks)."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, int]] = []
        self.done = 0

    def start(self, task: str, total: int) -> None:
        self.tasks.append((task, total))

    def advance(self, n: int = 1) -> None:
        self.done += n
