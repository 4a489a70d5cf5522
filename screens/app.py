"""The ward app: sign-in, idle lock, language, theme, and the screen stack.

`make_app` is the one factory used by the CLI, the Pilot tests and the
snapshot tests. The app holds one `Ward` (the signed-in session); screens
call domain services through it and never touch the database themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer

from wardcrf.site import Site

from . import i18n, times
from .background_sync import BackgroundSync, SyncChanged
from .i18n import t
from .theme import DEFAULT_THEME, HIGH_CONTRAST, HIGH_CONTRAST_THEME
from .ward import Ward
from .widgets.status import StatusBar
from .widgets.typeahead import KeyQueue

DEFAULT_LOCK_AFTER = 300.0
"""Seconds without a key press or click before the screen locks (5 minutes)."""


def lock_after_from_env() -> float:
    raw = os.environ.get("WARDCRF_LOCK_AFTER")
    if not raw:
        return DEFAULT_LOCK_AFTER
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_LOCK_AFTER
    return value if value > 0 else DEFAULT_LOCK_AFTER


class WardApp(App[None]):
    """wardcrf's terminal app. Build it with `make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "wardcrf"
    idle_clock: Callable[[], float] = staticmethod(time.monotonic)
    """What the idle lock measures time with (tests give it a clock they move themselves)."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "lock", "key.lock", priority=True),
    ]

    def __init__(
        self,
        site: Site,
        *,
        lock_after: float = DEFAULT_LOCK_AFTER,
        language: str | None = None,
        high_contrast: bool = False,
        ward: Ward | None = None,
        user: str = "",
    ) -> None:
        super().__init__()
        self.site = site
        self.lock_after = lock_after
        self.ward: Ward | None = ward
        self.initial_user = user
        self.locked = False
        self._idle: Timer | None = None
        self._last_input = self.idle_clock()
        self._start_language = language
        self._high_contrast = high_contrast
        # before sign-in: the catalogues' languages and the one asked for (the protocol's come at sign-in)
        i18n.offer(None if language is None else (*i18n.CATALOGUED, language))
        i18n.set_language(language or "en")
        self.background_sync: BackgroundSync | None = None
        self.sync_state: SyncChanged | None = None
        """The background sync's latest state (None: not running, or not yet probed)."""
        self.keys = KeyQueue(self)
        """Every key typed, run to its end in order (screens/widgets/typeahead.py)."""

    # -- start -----------------------------------------------------------------------
    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, lambda _screen: self.keys.screen_changed(), immediate=True)
        self.register_theme(HIGH_CONTRAST)
        self.theme = HIGH_CONTRAST_THEME if self._high_contrast else DEFAULT_THEME
        if self.ward is not None:
            self._signed_in(self.ward)
        else:
            from .login import LoginScreen

            self.push_screen(LoginScreen(self.site, user=self.initial_user), self._signed_in)

    def _signed_in(self, ward: Ward | None) -> None:
        if ward is None:
            self.exit()
            return
        self.ward = ward
        times.set_zone(ward.session.ctx.zone)
        self._apply_user_language()
        from .dashboard import DashboardScreen

        self.push_screen(DashboardScreen(ward))
        self._start_idle_timer()
        self._start_background_sync()

    def _apply_user_language(self) -> None:
        """Offer the ward protocol's languages; the signed-in user's saved one wins over the start-up
        default. A language the protocol does not declare (a start-up `--language zh` on PALM) is
        English, and the user is told so (i18n's module docstring)."""
        if self.ward is None:
            return
        from wardcrf import users

        ward = self.ward
        wanted = i18n.language()
        i18n.offer(ward.call(users.languages))
        if self._start_language:
            if wanted not in i18n.offered():
                self.notify(t("palette.language_not_declared", language=i18n.name_of(wanted)))
            return
        lang = ward.call(users.own_language) or "en"
        if lang in i18n.offered():
            i18n.set_language(lang)

    # -- idle lock -------------------------------------------------------------------
    def _start_idle_timer(self) -> None:
        # A repeating check against the time of the last input, rather than
        # a one-shot timer reset on each key: `Timer.reset` only restarts at
        # the end of the running interval, which could let the screen stay
        # open up to twice the configured time.
        self._last_input = self.idle_clock()
        if self._idle is None:
            self._idle = self.set_interval(min(1.0, self.lock_after / 4), self.check_idle_lock)

    def check_idle_lock(self) -> None:
        """Lock when nothing was typed or clicked for `lock_after` seconds (run every second)."""
        idle = self.idle_clock() - self._last_input
        if self.ward is not None and not self.locked and idle >= self.lock_after:
            self.action_lock()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self._last_input = self.idle_clock()
        if isinstance(event, events.Key) and not event.is_forwarded:
            # Type-ahead: each key runs to its end, in order, before the next.
            if not self.app_focus:
                self.app_focus = True
            await self.keys.key(event)
            return
        await super().on_event(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "lock":
            return self.ward is not None and not self.locked
        return True

    def action_lock(self) -> None:
        """Lock the screen now (also what the idle timer does)."""
        if self.ward is None or self.locked:
            return
        from .lock import LockScreen

        self.locked = True
        self.keep_drafts_now()  # a crash or power cut while locked loses nothing either
        self.push_screen(LockScreen(self.ward, self.ward.local_now()), self._unlocked)
        self.refresh_bindings()

    def keep_drafts_now(self) -> None:
        """Keep every form with typed values in the stack as its owner's draft, now (issue 14)."""
        from .unsaved import UnsavedWork

        for screen in self.screen_stack:
            if isinstance(screen, UnsavedWork):
                screen.keep_draft_now()

    async def action_quit(self) -> None:
        """ctrl+q: every form with typed values is kept as a draft first; then, if there was
        one, ask "Quit? y/N" (a slip on ctrl+q ends nothing); else quit at once."""
        from .dialogs.quit import QuitDialog
        from .unsaved import holds_typed_work

        self.keep_drafts_now()
        typed = any(holds_typed_work(s) for s in self.screen_stack)
        if not typed:
            self.exit()
        elif not isinstance(self.screen, QuitDialog):
            self.push_screen(QuitDialog(), self._quit_answered)

    def _quit_answered(self, quit_now: bool | None) -> None:
        if quit_now:
            self.keep_drafts_now()  # anything typed since (nothing can be; cheap and certain)
            self.exit()

    def _unlocked(self, ward: Ward | None) -> None:
        self.locked = False
        self.refresh_bindings()
        if ward is None:
            self.exit()
            return
        previous = self.ward
        if previous is not None and ward is not previous:
            self.ward = ward
            times.set_zone(ward.session.ctx.zone)
            self._start_language = None
            self._apply_user_language()
            self._restart_for_new_user(previous)
        self._start_idle_timer()

    @work(exclusive=True, group="switch-user")
    async def _restart_for_new_user(self, previous: Ward) -> None:
        """A different person unlocked: drop the previous user's screens (their typed forms
        kept as the previous user's drafts, offered back at their next sign-in)."""
        from .dashboard import DashboardScreen

        self.keep_drafts_now()  # each screen keeps its draft through its own (the previous) ward
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        assert self.ward is not None
        await self.push_screen(DashboardScreen(self.ward))
        self._start_background_sync()
        previous.close()
        self.notify(t("lock.switched", user=self.ward.user, previous=previous.user))

    # -- background sync -------------------------------------------------------------
    SYNC_TIMING: ClassVar[tuple[float, float, float]] = (5.0, 300.0, 60.0)
    """First retry delay, longest backoff, and the interval between syncs while online (s)."""

    def _start_background_sync(self) -> None:
        """Probe the hub with backoff and sync whenever it answers (issue 6), as this user."""
        from .background_sync import BackgroundSync

        self._stop_background_sync()
        if self.ward is None:
            return
        min_delay, max_delay, interval = self.SYNC_TIMING
        self.background_sync = BackgroundSync(
            self, self.ward, min_delay=min_delay, max_delay=max_delay, interval=interval
        )
        try:
            self.background_sync.start()
        except Exception as exc:  # the app works without sync; say why it is off
            from .errors import message_of

            self.background_sync.off_reason = message_of(exc)

    def _stop_background_sync(self) -> None:
        if self.background_sync is not None:
            self.background_sync.stop()
        self.sync_state = None

    def on_sync_changed(self, message: SyncChanged) -> None:
        self.sync_state = message
        for screen in self.screen_stack:
            for bar in screen.query(StatusBar):
                bar.show()
            refresh = getattr(screen, "sync_state_changed", None)
            if refresh is not None:
                refresh()

    # -- language and theme ----------------------------------------------------------
    def action_next_language(self) -> None:
        """Cycle the languages offered (the ward protocol's) and remember the choice for the user."""
        languages = i18n.offered()
        nxt = languages[(languages.index(i18n.language()) + 1) % len(languages)]
        self.switch_language(nxt)

    def switch_language(self, language: str) -> None:
        i18n.set_language(language)
        if self.ward is not None and not self.locked:
            self._save_language(self.ward, language)
        self.call_later(self._relabel)

    @work(thread=True, group="settings")
    def _save_language(self, ward: Ward, language: str) -> None:
        from wardcrf import users

        try:
            ward.call(users.set_language, language)
        except Exception as exc:  # the switch still applies for this session
            from .errors import message_of

            self.notify(message_of(exc), severity="warning")  # thread-safe: posts Textual's Notify

    async def _relabel(self) -> None:
        """Redraw every screen in the new language (typed values are kept)."""
        for screen in list(self.screen_stack):
            await self._let_loads_land(screen)
            remember = getattr(screen, "remember", None)
            if remember is not None:
                remember()
            if screen.is_mounted:
                await screen.recompose()
                relabelled = getattr(screen, "relabelled", None)
                if relabelled is not None:
                    relabelled()
        self.screen.refresh_bindings()

    async def _let_loads_land(self, screen: Screen[object], timeout: float = 2.0) -> None:
        """Wait (bounded) for the screen's running workers before it is rebuilt.

        A worker fills its screen by posting it a message (its result); one
        handled in the middle of `recompose` found its widgets gone and
        crashed the app (`NoMatches`, seen on the dashboard under load).
        Waiting here for the workers, then for the screen to handle what they
        posted, lets them fill the old widgets; `relabelled` then loads again.
        A worker that waits for the user (a signature dialog) is left after
        `timeout`.
        """
        import asyncio
        import contextlib

        running = [w for w in self.workers if w.node is screen and not w.is_finished]
        if running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.workers.wait_for_complete(running), timeout)
        for _ in range(100):  # a bound for a screen that never stops posting (none does)
            if screen.message_queue_size == 0:
                break
            await asyncio.sleep(0)  # the screen's own task takes the next message
        await asyncio.sleep(0)  # and finishes the handler of the last one

    def action_toggle_contrast(self) -> None:
        """Switch between the default and the high-contrast theme."""
        self.theme = DEFAULT_THEME if self.theme == HIGH_CONTRAST_THEME else HIGH_CONTRAST_THEME

    # -- places ----------------------------------------------------------------------
    def open_place(self, name: str) -> None:
        """Open a screen by name if the signed-in role may use it."""
        from .widgets.places import by_name

        if self.ward is None:
            return
        place = by_name(name)
        if not self.ward.can(place.permission):
            self.notify(t("refused.role", role=self.ward.role), severity="error")
            return
        self.push_screen(place.open(self.ward))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette: every action of the signed-in user, translated."""
        if self.ward is not None and not self.locked:
            from .widgets.places import offered

            for place in offered(self.ward):
                yield SystemCommand(
                    t(place.label),
                    t("palette.open", place=t(place.label)),
                    lambda name=place.name: self.open_place(name),
                )
            yield SystemCommand(t("palette.lock"), t("palette.lock_help"), self.action_lock)
        for lang in i18n.offered():
            yield SystemCommand(
                t(
                    "palette.language" if i18n.has_catalogue(lang) else "palette.language_labels_only",
                    language=i18n.name_of(lang),
                ),
                t("palette.language_help"),
                lambda lang=lang: self.switch_language(lang),
            )
        yield SystemCommand(t("palette.contrast"), t("palette.contrast_help"), self.action_toggle_contrast)
        yield SystemCommand(t("palette.quit"), t("palette.quit_help"), self.action_quit)

    def on_unmount(self) -> None:
        self._stop_background_sync()
        if self.ward is not None:
            self.ward.close()


def make_app(
    data_dir: Path | str,
    *,
    lock_after: float | None = None,
    language: str | None = None,
    high_contrast: bool = False,
    ward: Ward | None = None,
    user: str = "",
) -> WardApp:
    """Build the app for a site directory (raises `UsageError` if it is not one)."""
    site = ward.site if ward is not None else Site.open(Path(data_dir))
    if language is not None and not i18n.LANGUAGE_CODE.match(language):
        from wardcrf.errors import UsageError

        raise UsageError(_bad_language(language))
    return WardApp(
        site,
        lock_after=lock_after if lock_after is not None else lock_after_from_env(),
        language=language,
        high_contrast=high_contrast,
        ward=ward,
        user=user,
    )


def run_app(data_dir: Path, **kwargs: object) -> None:
    """Run the app in this terminal (the `wardcrf` command with no arguments).

    The photo protocol is decided first: textual-image can only query the
    terminal before the app takes it over (`photo_protocol`)."""
    from .widgets import photo_protocol

    photo_protocol.prepare()
    make_app(data_dir, **kwargs).run()  # type: ignore[arg-type]


def _bad_language(language: str) -> str:
    shown = repr(language[:20]) + ("…" if len(language) > 20 else "")
    return (
        f"unknown language {shown}: give a language code ({', '.join(i18n.CATALOGUED)}, or one the ward's"
        " protocol declares, e.g. pt)"
    )
