"""A text box a barcode scanner types into, that knows a burst the scanner ended with a quiet gap.

A scanner types a code as a burst of keys. This laptop's scanner profile
(`wardcrf.scanner`, `wardcrf device scanner`) says how the code ends:

- ``enter``: on Enter, and nothing here changes how the field behaves
  (`gap_s` is None): keys typed by a person, slowly or fast, are never cut
  into scans.
- ``gap``: also when the keys stop for the profile's gap. The field then
  posts `ScanField.Quiet` once the keys have stopped for that long, saying
  whether what was typed is one **complete scan**: a burst of at least
  `MIN_SCAN_KEYS` characters, typed into an empty field (or over its whole
  selected text, as a refused scan is left), with no editing key inside it
  (Backspace, an arrow: a person; the keys after such a key start a new
  burst, so a scan right after ctrl+z is one). A person typing slowly into an
  empty field types a first key, pauses, and the field then is not empty:
  nothing they type after that is taken for a scan (Enter takes it).

"Stopped" is the keys, not the clock alone: when the gap has passed but
keys are still waiting to be run (a busy laptop, keys held while a check
runs, `typeahead.hold_keys`) the burst is not over, and the field waits
another gap. So a loaded laptop does not cut one scan in two.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.message import Message
from textual.timer import Timer

from .typeahead import KeyQueue, WardInput

MIN_SCAN_KEYS = 2
"""Fewer keys than this followed by quiet are a person starting to type, never a scanner's code."""

MAX_WAITS = 20
"""Gaps waited for keys still queued, at most (then the burst is taken as it is)."""


class ScanField(WardInput):
    """An input that, under a ``gap`` scanner profile, says when a scanner's burst has ended."""

    class Quiet(Message):
        """The keys stopped for the profile's gap; `complete`: what was typed is one whole scan."""

        def __init__(self, field: ScanField, value: str, complete: bool) -> None:
            super().__init__()
            self.field = field
            self.value = value
            self.complete = complete

        @property
        def control(self) -> ScanField:
            return self.field

    def __init__(self, *args: Any, gap_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gap_s = gap_s
        """The scanner profile's gap in seconds (None: codes end on Enter only)."""
        self._timer: Timer | None = None
        self._keys = 0  # characters in the burst so far
        self._fresh = False  # the burst began in an empty (or wholly selected) field
        self._waits = 0

    @property
    def in_burst(self) -> bool:
        """Keys are coming and the gap has not passed yet."""
        return self._timer is not None

    def on_key(self, event: events.Key) -> None:
        # Textual runs each class's key handler in turn, subclass first: this one runs before
        # WardInput's and Input's, so the field is as it was before this key.
        if self.gap_s is None:
            return
        if event.key == "enter":  # the code ended the usual way: the Enter handlers take it
            self._end_burst()
            return
        if event.is_printable:
            if (
                not self.in_burst or self._keys == 0
            ):  # a new burst (or the first character after a person's key)
                self._waits = 0
                self._fresh = self._empty_or_replaced()
            self._keys += 1
        else:
            # Backspace, an arrow, ctrl+z, Tab: a person's key. What was typed before it is no scan;
            # the keys after it start a new burst (a scan right after ctrl+z is still one).
            self._keys, self._fresh, self._waits = 0, False, 0
        self._restart()

    def _empty_or_replaced(self) -> bool:
        """Whether the next printable key starts the field's text afresh."""
        if not self.value:
            return True
        start, end = sorted(self.selection)
        if (start, end) == (0, len(self.value)):
            return True
        # WardInput selects the whole value when a key comes before the field heard of its focus.
        return not self.has_focus and not self._selected_early and self.select_on_focus

    def _restart(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        assert self.gap_s is not None
        self._timer = self.set_timer(self.gap_s, self._gap_passed)

    def _end_burst(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _keys_waiting(self) -> bool:
        """Keys typed but not run yet (and messages they left), here or on the way here."""
        app = self.app
        queue = getattr(app, "keys", None)
        if isinstance(queue, KeyQueue) and queue.waiting:
            return True
        nodes = [app, self, *self.ancestors]
        return any(node.message_queue_size for node in nodes if hasattr(node, "message_queue_size"))

    def _gap_passed(self) -> None:
        self._timer = None
        if self._keys_waiting() and self._waits < MAX_WAITS:
            self._waits += 1
            self._restart()
            return
        value = self.value
        complete = self._fresh and self._keys >= MIN_SCAN_KEYS and bool(value.strip())
        self.post_message(self.Quiet(self, value, complete))

    def on_unmount(self) -> None:
        self._end_burst()
