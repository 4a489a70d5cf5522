"""Sync "once a connection is available", while the ward app runs.

When the site has a hub URL and the signed-in role may export
(`sync.export`), the app runs `wardcrf.sync.service.SyncService` — the same
loop as `wardcrf sync watch` — in a thread worker: it probes the hub with
exponential backoff while offline and, as soon as the hub answers, pushes
pending bundles and pulls what waits for the ward.

It runs on its own database connection (`Site.reopen`, same user and
role), so a slow network never holds the connection the screens use. Each
change of state is posted to the app as a `SyncChanged` message
(`post_message` is thread-safe); the status bar shows offline / syncing /
synced at. Stopping (sign-out, switch of user, quit) wakes the loop at
once; a request in flight ends within the client's timeouts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from textual.app import App

    from .ward import Ward


class SyncChanged(Message):
    """The background sync's state changed (posted from its thread)."""

    def __init__(self, state: str, at: str | None, detail: str) -> None:
        super().__init__()
        self.state = state
        self.at = at
        self.detail = detail


class BackgroundSync:
    """One background sync loop for one signed-in user."""

    def __init__(
        self,
        app: App[Any],
        ward: Ward,
        *,
        min_delay: float = 5.0,
        max_delay: float = 300.0,
        interval: float = 60.0,
    ) -> None:
        self.app = app
        self.ward = ward
        self.timing = (min_delay, max_delay, interval)
        self.service: Any = None
        self.off_reason = ""

    def start(self) -> bool:
        """Start the loop if this laptop has a hub URL and the role may sync; else say why not."""
        from wardcrf.sync import registry

        from .i18n import t

        url = self.ward.call(registry.hub_url)
        if not url:
            self.off_reason = t("bgsync.no_url")
            return False
        if not self.ward.can("sync.export"):
            self.off_reason = t("bgsync.role", role=t("role." + self.ward.role))
            return False
        from wardcrf.sync.service import SyncService
        from wardcrf.sync.transport import Client

        session = self.ward.site.reopen(self.ward.session)
        min_delay, max_delay, interval = self.timing
        # One attempt per probe: the loop's own backoff spaces the probes.
        client = Client(url, attempts=1, connect_timeout=5.0, timeout=60.0)
        self.service = SyncService(
            session,
            client,
            min_delay=min_delay,
            max_delay=max_delay,
            interval=interval,
            on_event=self._event,
        )
        self.app.run_worker(self._run, thread=True, group="background-sync", exclusive=True)
        return True

    def _run(self) -> None:
        service = self.service
        try:
            service.run()
        finally:
            service.session.close()

    def _event(self, _line: str) -> None:
        state = self.service.state
        self.app.post_message(SyncChanged(state.state, state.at, state.detail))

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
