"""Helpers for driving the app in Pilot tests."""

from __future__ import annotations

import contextlib

from textual.worker import WorkerCancelled

PASSWORD = "test-password-1"


INTERACTIVE = {"form-save", "_loader", "dsmg-decide", "sync-answer", "background-sync"}
"""Worker groups never waited for here: those waiting for a person (a dialog), those that
run until the app stops (background sync), and Textual's DirectoryTree loader, which runs
as long as the tree is mounted."""


async def settle(pilot) -> None:
    """Let background work finish and the screen redraw, completely.

    Two things finish after a worker does, and a snapshot taken before them
    differs from one taken after (the flake of 1 run in 5 on a busy
    machine): the message the worker posts to its screen (its result), and each
    `DataTable`'s measurement of its columns, which Textual defers to the
    table's next idle moment (until then a column is as wide as its header).
    Both are messages: the table's change asks for a redraw, which queues a
    prompt, and a widget goes idle (the table measures) once its queue is
    empty. So: wait for the workers, then until every widget of the screen
    has emptied its queue, then for any animation. Public Textual API only
    (`Pilot.pause`, `App.workers`, `Worker.wait`, `message_queue_size`,
    `walk_children`, `Pilot.wait_for_scheduled_animations`); every wait is
    on a condition, none on the clock.
    """
    for _ in range(3):
        await pilot.pause()
        busy = [w for w in pilot.app.workers if w.group not in INTERACTIVE and not w.is_finished]
        for worker in busy:
            # A worker whose screen closed meanwhile (a dialog dismissed) is cancelled: done too.
            with contextlib.suppress(WorkerCancelled):
                await worker.wait()
    for _ in range(100):  # a bound for a widget that never stops posting (none does today)
        await pilot.pause()
        if _drained(pilot.app):
            break
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def _drained(app) -> bool:
    """Whether the app and every widget of its screen have no message waiting (each has gone idle)."""
    return all(node.message_queue_size == 0 for node in (app, *app.screen.walk_children(with_self=True)))


async def sign_in(pilot, user: str, password: str = PASSWORD) -> None:
    await pilot.press(*user, "enter")
    await pilot.press(*password, "enter")
    await settle(pilot)


def page_photo(path) -> str:
    """A generated consent-page photo on disk; returns the `@path` a field accepts."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(img).text((10, 10), "consent page 1", fill="black")
    img.save(path, "JPEG")
    return f"@{path}"


def enroll(site, tmp_path, *, enrolled_on: str = "2020-03-15") -> str:
    """Consent, screen, enroll and skin-test one participant through the services."""
    from wardcrf import workflow

    s = site.unlock("clinician", PASSWORD)
    try:

        def pw(_user: str) -> str:
            return PASSWORD

        ev = workflow.submit(
            s,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-10T10:00:00+08:00",
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": page_photo(tmp_path / "page.jpg"),
            },
            password_for=pw,
        )
        pid = ev.subject.removeprefix("participant:")
        workflow.submit(
            s,
            "screening",
            {
                "date": "2020-03-11",
                "dob": "1965-05-01",
                "sex": "M",
                "pcr_confirmed": "yes",
                "severity": "severe",
            },
            participant=pid,
        )
        workflow.submit(s, "enrollment", {"date": enrolled_on}, participant=pid)
        workflow.submit(
            s, "skin_test", {"time": f"{enrolled_on}T15:00:00+08:00", "result": "negative"}, participant=pid
        )
        return pid
    finally:
        s.close()


def key_event(key: str):
    """A key press as Textual's driver makes it ("a", "tab", "-", "ctrl+n")."""
    import unicodedata

    from textual import events
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def burst(pilot, *keys: str) -> None:
    """Every key posted before the app looks at the first, then wait until all have run.

    What a barcode scanner, a fast typist or a busy laptop does: the terminal
    delivers the keys together. (`pilot.press` waits for the app to be idle
    between keys, which hides type-ahead faults.)
    """
    app = pilot.app
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        app.post_message(event)
    await keys_run(pilot)


async def keys_run(pilot) -> None:
    """Wait until every key typed has run (and what it started has settled)."""
    import asyncio

    queue = getattr(pilot.app, "keys", None)
    loop = asyncio.get_running_loop()
    end = loop.time() + 60  # a bound for a broken app, not a timing: the loop waits on the queue
    while queue is not None and queue.waiting and loop.time() < end:
        await pilot.pause()
        if queue.waiting:
            for worker in [w for w in pilot.app.workers if w.group not in INTERACTIVE and not w.is_finished]:
                with contextlib.suppress(WorkerCancelled):
                    await worker.wait()
    await settle(pilot)


def screen_text(app) -> str:
    """What the terminal shows now, as lines of text (from Textual's own screenshot)."""
    import html
    import re
    from collections import defaultdict

    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = defaultdict(list)
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows[float(m.group(2))].append((float(m.group(1)), html.unescape(m.group(3))))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            col = round(x / 12.2)
            line = line.ljust(col) + text
        lines.append(line.replace("\xa0", " "))
    return "\n".join(lines)
