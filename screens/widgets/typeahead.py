"""Type-ahead: every key lands in the field the keys before it left focused.

Why this module exists. Textual hands a key to the focused widget by posting
it to that widget's message queue, and the app takes the next key at once.
A key that completes a field (Tab, Enter, a CT score) moves the focus only
when the widget gets round to it — a Tab even travels up through every
parent's queue before the app runs its binding — and by then the keys typed
behind it have already been handed to the old field. A fast typist, a
barcode scanner or a loaded laptop turned `94` Tab `128` into "SpO2 94128".

The guarantee, by construction rather than by timing:

1. `KeyQueue`: the app takes keys in the order they were typed and runs each
   one to the end — the focused widget's handlers, its parents', then the
   bindings, exactly Textual's order — before it looks at the next
   (`dispatch_key`). Nothing in that path waits on a timer or a repaint.
2. Whatever a key's handler does to the focus happens in that handler:
   `focus_now` (Textual's `Widget.focus` is deferred to the app's queue,
   behind the keys already typed), and `WardInput` delivers its Enter
   (`Input.Submitted`) through the handlers at once (`deliver_now`) and
   focuses at once when asked to; `WardSelect`'s drop-down takes the focus
   when it opens and gives it back when it closes, in the key's handler
   (a deferred focus request left behind a choice once ran after the
   keys typed next and moved the cursor into the closed list).
3. When what comes next is not known yet, keys wait in order instead of
   going somewhere: while a newly shown screen is being built (until its
   first field has the focus), and while a screen holds them (`hold`) for a
   decision made in a worker — a sign-in, a kit check. A holder that is
   refused may drop what was typed ahead of the refusal (`release(drop=True)`):
   keys meant for the next screen must not land in a password field.
   A save (ctrl+s in a form or a wizard) holds them too (`SAVE_HOLD`), from
   the key itself until its verdict: saved, they go to what comes next (the
   screen underneath, an offer the save makes); a dialog the save needs (a
   reason) gets them once it is built; a refusal, or a signature's password
   field, drops them — they were typed for the screen after the save.

Every flow this must hold for (CT grid, vitals form, dose wizard, receipt
with a scanner burst, login) is tested with all keys posted before the app
looks at the first (tests/tui/test_typeahead.py), and in the real app in
tmux with both cores busy (tests/e2e/test_typeahead_tmux.py).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.message_pump import MessagePump
from textual.widget import Widget
from textual.widgets import Input, OptionList, Select, SelectionList
from textual.widgets._select import SelectCurrent, SelectOverlay

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen


# -- one message through its handlers, now ------------------------------------------------


async def deliver_now(message: Message, node: MessagePump) -> None:
    """Run `message`'s handlers on `node` and, as it bubbles, on each parent — now.

    The same order and rules as Textual's own bubbling (a handler's `stop()`
    ends it, `prevent_default()` skips the base classes' handlers on that
    node only, a message stops after its sender's parent), but in the caller's
    task instead of one queue after another, so that what the handlers do
    (move the focus, clear a field) is done before the caller goes on.
    """
    bubbles = message.bubble
    message.bubble = False  # type: ignore[misc]  # we walk the parents ourselves
    try:
        current: MessagePump | None = node
        while current is not None:
            with current._context():
                await current._dispatch_message(message)
            parent = current._parent
            if not bubbles or message._stop_propagation or parent is None:
                return
            if not (current.is_parent_active and current.is_attached):
                return
            if message._sender is not None and message._sender is parent:
                message.stop()  # the parent sent it: it is the last to see it
            message._no_default_action = False
            current = parent
    finally:
        del message.bubble  # back to the class's value


async def dispatch_key(app: App[Any], event: events.Key) -> None:
    """Run one key to the end, as Textual would, before the next is looked at.

    Textual's order (`App.on_event`, then bubbling to `App._on_key`):
    Escape un-maximises a maximised widget; priority bindings (app down to
    the focused widget); the focused widget's key handlers and then each
    parent's (a handler may stop the key); the non-priority bindings from
    the focused widget up; the app's `key_*` methods.
    """
    screen = app.screen
    if screen.maximized is not None and event.key == "escape" and app.escape_to_minimize:
        screen.minimize()
        return
    if app.focused is not None:
        screen._clear_tooltip()
    if await app._check_bindings(event.key, priority=True):
        return
    event._set_forwarded()
    target: MessagePump = app.focused or screen
    # The app's own turn (non-priority bindings, `key_*`) is its `_on_key`, reached by bubbling.
    await deliver_now(event, target)


def focus_now(widget: Widget) -> None:
    """Give `widget` the focus now (Textual's `focus()` waits behind the keys already typed).

    A widget not yet on a screen falls back to the deferred focus.
    """
    try:
        screen = widget.screen
    except Exception:
        widget.focus()
        return
    if widget.is_mounted:
        screen.set_focus(widget)
    else:
        widget.focus()


SAVE_HOLD = "save"
"""Keys typed behind ctrl+s wait under this name for the save's verdict (see the module doc, 3)."""


def hold_keys(node: MessagePump, reason: str) -> None:
    """Keys typed from now on wait (in order) until `release_keys(node, reason)`."""
    queue = getattr(node.app, "keys", None)
    if isinstance(queue, KeyQueue):
        queue.hold(reason)


def release_keys(node: MessagePump, reason: str, *, drop: bool = False) -> None:
    """Let the keys held for `reason` run (`drop`: throw away those typed ahead of a refusal)."""
    queue = getattr(node.app, "keys", None)
    if isinstance(queue, KeyQueue):
        queue.release(reason, drop=drop)


# -- the app's key queue --------------------------------------------------------------


class KeyQueue:
    """Keys in the order typed, each run to its end before the next (see the module doc)."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self.pending: deque[events.Key] = deque()
        self.holds: set[str] = set()
        self._ready: Screen[Any] | None = None
        """The screen known to be built and focused (keys may go to it)."""
        self._asked: Screen[Any] | None = None
        """The screen asked to say when it is built."""
        self._draining = False

    async def key(self, event: events.Key) -> None:
        """A key from the terminal: queue it, and run what may run now."""
        self.pending.append(event)
        await self.drain()

    def hold(self, reason: str) -> None:
        """Keep keys waiting (in order) until `release(reason)`: a decision is being made."""
        self.holds.add(reason)

    def release(self, reason: str, *, drop: bool = False) -> None:
        """The decision is made; `drop`: throw away the keys typed ahead of a refusal."""
        if reason not in self.holds:
            return
        self.holds.discard(reason)
        if drop:
            self.pending.clear()
        self.app.call_later(self.drain)

    def screen_changed(self) -> None:
        """A screen was pushed or popped: keys wait until the new top one is built."""
        self.app.call_later(self.drain)

    @property
    def waiting(self) -> int:
        """Keys typed but not yet run (tests wait on this)."""
        return len(self.pending)

    async def drain(self) -> None:
        if self._draining:
            return  # the running drain takes the new keys in turn
        self._draining = True
        try:
            while self.pending and not self.holds and self._screen_ready():
                await dispatch_key(self.app, self.pending.popleft())
        finally:
            self._draining = False

    def _screen_ready(self) -> bool:
        """Whether the top screen has been built and given its first focus.

        A pushed screen composes, mounts and resumes (where Textual focuses
        its first field, and where its `on_mount` asks for the focus it
        wants) through its own queue. A callback queued on that screen now
        runs after all of them; it then queues the release on the app, so it
        also runs after the focus requests those steps queued there.
        """
        try:
            screen = self.app.screen
        except Exception:
            return False
        if screen is self._ready:
            return True
        if screen is not self._asked:
            self._asked = screen
            screen.call_later(lambda: self.app.call_later(self._built, screen))
        return False

    async def _built(self, screen: Screen[Any]) -> None:
        if self._asked is screen:
            self._asked = None
        self._ready = screen
        await self.drain()


# -- a text field that keeps up with type-ahead -------------------------------------------


class WardInput(Input):
    """Textual's Input, for type-ahead: Enter is handled at once, focus moves at once.

    - Enter delivers `Input.Submitted` through the handlers now (not through
      the queues), so a handler that moves on to the next field, or takes a
      scan and clears the field, has done so before the next key is run.
    - `focus()` on a mounted field focuses now.
    - Entering a field selects its value (typing replaces it) as of the
      moment the focus came, even when the keys typed next are run before
      the field hears of its focus (Textual selects on the `Focus` event,
      which waits in the field's queue: "2021-06-30" became "6-30").
    - `ctrl+x` does not cut: with the whole value selected on entering a
      field, a cut wiped it (issue 14: "Received by" lost). List fields use
      it to drop the last entry; elsewhere it does nothing.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+x", "ignore", show=False)]

    _selected_early = False
    """A key came before the Focus event: the selection was made then, not again."""

    # Textual runs each class's own `_on_key` / `_on_focus` in turn (subclass
    # first), so these add to Input's handlers rather than replace them.
    def _on_key(self, event: events.Key) -> None:
        if not self.has_focus and not self._selected_early:
            self._selected_early = True
            if self.select_on_focus:
                self.select_all()

    def _on_focus(self, event: events.Focus) -> None:
        if self._selected_early:
            self._selected_early = False
            if self.select_on_focus:  # Input's own handler (next) must not select what was typed
                self.select_on_focus = False
                self.call_next(setattr, self, "select_on_focus", True)

    async def action_submit(self) -> None:
        result = self.validate(self.value) if "submitted" in self.validate_on else None
        await deliver_now(self.Submitted(self, self.value, result), self)

    def action_ignore(self) -> None:
        """A key that must not edit the field."""

    def focus(self, scroll_visible: bool = True) -> WardInput:
        if self.is_mounted:
            focus_now(self)
            return self
        super().focus(scroll_visible)
        return self


async def choose_now(options: OptionList) -> None:
    """Enter on a list: the highlighted option's `OptionSelected`, delivered before the next key runs.

    Textual posts it (to the list, or its screen acts on it later), so keys typed behind
    the Enter ran first; each list below says what that lost.
    """
    highlighted = options.highlighted
    if highlighted is None:
        return
    option = options._options[highlighted]
    if not option.disabled:
        await deliver_now(options.OptionSelected(options, option, highlighted), options)


class WardOptionList(OptionList):
    """Textual's OptionList, for type-ahead: Enter chooses the highlighted option at once.

    Textual's Enter posts `OptionSelected` to the list and its screen acts on
    it later, after the keys typed behind the Enter: in the form picker, the
    scores typed after choosing a form went to the picker instead of the form
    it opens. Delivered now, a choice that closes the screen has closed it
    before the next key is run, which then waits for the screen that opens.
    """

    async def action_select(self) -> None:
        await choose_now(self)


class WardSelectionList(SelectionList[Any]):
    """Textual's SelectionList, for type-ahead: Enter ticks the highlighted choice at once.

    Textual's Enter posts `OptionSelected` to the list itself and ticks on
    receiving it, after the keys typed behind the Enter (a ctrl+n found the
    checklist still empty).
    """

    async def action_select(self) -> None:
        await choose_now(self)


class WardSelectOverlay(SelectOverlay):
    """The drop-down list of a `WardSelect`: it takes the focus, chooses and closes at once.

    Textual's Select opens its list by asking for the focus the deferred way
    (`overlay.focus()`: a request queued behind the keys already typed). When
    a choice and a Tab were typed before that request ran, it ran late and
    put the cursor back into the list, closed by then: every later key went
    to a hidden drop-down (the receipt's third yes/no and its condition text
    were lost, 1 run in 30 in tmux under load). Here the focus is given in
    the key's own handler, so no focus request is left behind to run late.
    """

    def focus(self, scroll_visible: bool = True) -> WardSelectOverlay:
        if self.is_mounted:
            focus_now(self)
            return self
        super().focus(scroll_visible)
        return self

    async def action_select(self) -> None:
        await choose_now(self)

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        event.prevent_default()  # not SelectOverlay's own handler, which queues the choice
        await deliver_now(self.UpdateSelection(event.option_index), self)

    async def action_dismiss(self) -> None:
        await deliver_now(self.Dismiss(), self)


class WardSelect(Select[Any]):
    """Textual's Select, for type-ahead: the list opens, chooses and closes in the key's handler.

    Textual's drop-down takes the focus, reports a choice and gives the focus
    back through the queues (Enter, Down, Enter typed fast went to the
    closed drop-down and opened it again, choosing nothing).
    """

    def compose(self) -> ComposeResult:
        yield SelectCurrent(self.prompt)
        yield WardSelectOverlay(type_to_search=self._type_to_search).data_bind(compact=Select.compact)

    @on(SelectOverlay.Dismiss)
    def _stale_dismiss(self, event: SelectOverlay.Dismiss) -> None:
        """A list's "lost the focus" that arrives after it was opened again is out of date.

        The overlay reports losing the focus through its queue; a choice and
        a re-opening typed together leave that report behind the re-opening,
        and Textual's Select would close the list the cursor is in.
        """
        focused = self.app.focused
        if event.lost_focus and self.expanded and focused is not None and focused.parent is self:
            event.stop()
            event.prevent_default()  # not Select's own handler, which closes the list

    def focus(self, scroll_visible: bool = True) -> WardSelect:
        if self.is_mounted:
            focus_now(self)
            return self
        super().focus(scroll_visible)
        return self
