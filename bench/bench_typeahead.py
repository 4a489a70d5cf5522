"""Type-ahead benchmark: what running each key to its end costs (issue 14).

The ward app's `KeyQueue` runs every key through the focus chain and the
bindings before it looks at the next (screens/widgets/typeahead.py); Textual on its
own forwards a key to the focused widget's queue and takes the next at once
(and so puts keys in the wrong field). Both are timed on the same burst —
six values with Tab between them, 21 keys, posted before the app looks at
the first — from the first key posted to the last key's character in a
field, alternated in one loop, wall and CPU medians, with the machine's load.

    python bench/bench_typeahead.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input

VALUES = ("36.8", "88", "20", "94", "128", "80")
KEYS: list[str] = [k for v in VALUES for k in (*v, "tab")]
TYPED = sum(len(v) for v in VALUES)


def _key(k: str) -> events.Key:
    return events.Key("tab", None) if k == "tab" else events.Key("full_stop" if k == "." else k, k)


class Plain(App[None]):
    """Textual's own key dispatch, six plain Inputs."""

    def compose(self) -> ComposeResult:
        for i in range(len(VALUES)):
            yield Input(id=f"f{i}")


def _ours() -> type[App[None]]:
    from wardcrf.screens.widgets.typeahead import KeyQueue, WardInput

    class Ours(App[None]):
        """The ward app's key queue, six WardInputs."""

        def __init__(self) -> None:
            super().__init__()
            self.keys = KeyQueue(self)

        def compose(self) -> ComposeResult:
            for i in range(len(VALUES)):
                yield WardInput(id=f"f{i}")

        def on_mount(self) -> None:
            self.screen_change_signal.subscribe(self, lambda _s: self.keys.screen_changed(), immediate=True)

        async def on_event(self, event: events.Event) -> None:
            if isinstance(event, events.Key) and not event.is_forwarded:
                await self.keys.key(event)
                return
            await super().on_event(event)

    return Ours


async def _burst(app: App[None]) -> tuple[float, float, bool]:
    inputs = list(app.query(Input))
    inputs[0].focus()
    for _ in range(20):
        await asyncio.sleep(0)
    w0, c0 = time.perf_counter(), time.process_time()
    for k in KEYS:
        app.post_message(_key(k))
    while sum(len(i.value) for i in inputs) < TYPED:
        await asyncio.sleep(0)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    right = [i.value for i in inputs] == list(VALUES)
    for i in inputs:
        i.value = ""
    return wall, cpu, right


async def _run(app_class: type[App[None]], rounds: int) -> list[tuple[float, float, bool]]:
    out = []
    app = app_class()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for _ in range(rounds):
            out.append(await _burst(app))
            await pilot.pause()
    return out


def measure(quick: bool) -> dict[str, list[tuple[float, float, bool]]]:
    rounds, loops = (5, 3) if quick else (20, 7)
    ours, plain = _ours(), Plain
    got: dict[str, list[tuple[float, float, bool]]] = {"ours": [], "textual": []}
    for _ in range(loops):  # alternated, so a change in the machine's load hits both alike
        got["ours"] += asyncio.run(_run(ours, rounds))
        got["textual"] += asyncio.run(_run(plain, rounds))
    return got


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows for bench/run.py: wall and CPU of a burst, ours beside Textual's own dispatch."""
    got = measure(quick)
    rows = []
    for what, i in (("wall", 0), ("cpu", 1)):
        ours = statistics.median(r[i] for r in got["ours"]) * 1000
        base = statistics.median(r[i] for r in got["textual"]) * 1000
        rows.append(
            {
                "name": f"burst of {len(KEYS)} keys, {what} (load {os.getloadavg()[0]:.1f})",
                "value": ours,
                "baseline": base,
                "ratio": ours / base if base else 0.0,
                "unit": "ms",
            }
        )
    return rows


def main() -> None:
    got = measure("--quick" in sys.argv)
    load = os.getloadavg()[0]
    print(f"type-ahead: a burst of {len(KEYS)} keys (6 values, Tab between), {len(got['ours'])} bursts each")
    for name, rows in got.items():
        wall = statistics.median(r[0] for r in rows) * 1000
        cpu = statistics.median(r[1] for r in rows) * 1000
        right = sum(r[2] for r in rows)
        print(
            f"  {name:8} wall {wall:6.1f} ms  cpu {cpu:6.1f} ms  every value in its field: {right}/{len(rows)}"
        )
    print(f"  load average {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
