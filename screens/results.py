"""The refusal a screen's worker posts back: one typed message all the screens share.

A worker runs a service in a thread and posts its result to its screen as a
typed message: each screen's own nested dataclasses (`SyncScreen.Loaded`,
`StepWizard.KitChecked`, ...), handled with `@on`. A refusal is the same for
all of them, the one line `errors.message_of` words, so it is one class: the
screen handles `@on(Refused)` and shows the line where it shows refusals. A
screen whose refusals differ by job (the trail or a photo, a panel of the
dashboard) keeps its own nested message for each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from textual.message import Message
from textual.message_pump import MessagePump

from .errors import message_of


@dataclass
class Refused(Message):
    """A worker's service refused (or failed): the one line to show, in the service's words."""

    bubble: ClassVar[bool] = False  # for the screen it was posted to, never its parents
    text: str


R = TypeVar("R")


def post_outcome(
    node: MessagePump,
    call: Callable[[], R],
    done: Callable[[R], Message],
    *,
    catch: type[Exception] | tuple[type[Exception], ...] = Exception,
) -> None:
    """In a worker's thread: run `call` and post `done(result)` to `node` (its screen), or
    `Refused` with the one line `message_of` words when the call raises one of `catch`."""
    try:
        result = call()
    except catch as exc:
        node.post_message(Refused(message_of(exc)))
        return
    node.post_message(done(result))
