"""Push, pull and the watcher that syncs "once a connection is available".

`SyncService` is what `wardcrf sync watch` runs and what the TUI runs in a
worker thread: it probes the hub with exponential backoff while offline and,
as soon as the hub answers, pushes pending bundles and pulls what waits for
the ward. Its `state` (offline / syncing / synced at ...) is what the
dashboard shows. Every loop is bounded by `max_rounds` or a stop event.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wardcrf import devicekeys
from wardcrf.clock import iso_utc, now_utc
from wardcrf.errors import Refused, UsageError, WardError

from . import outbox, ward
from .transport import Client, Offline

if TYPE_CHECKING:
    from wardcrf.site import Session


def hub_client(session: Session, url: str | None = None, **options: Any) -> Client:
    """A client for `url`, or for the hub URL set with `sync set-hub --url` (CLI and TUI)."""
    from . import registry

    hub = registry.require_hub(session.store)
    target = url or hub["url"]
    if not target:
        raise UsageError(
            "no hub URL: an admin sets the hub's address (`wardcrf sync set-hub CARD --url URL`, or pass --url)"
        )
    return Client(target, **options)


def push(session: Session, client: Client) -> list[str]:
    """Send the bundles the hub lacks (resumable), then apply its receipt."""
    rows = ward.prepare(session)
    signer = devicekeys.signer(session)
    me = session.ctx.device
    hub_state = client.state(me)
    done = int(hub_state.get("bundle_seq") or 0)
    lines: list[str] = []
    for row in rows:
        if row["bundle_seq"] <= done:
            continue  # already at the hub (an earlier, interrupted push got this far)
        name, cipher, sig = outbox.materialize(session.store, row, signer)
        res = client.push(name, cipher, sig)
        lines.append(f"{name}: {res.get('message')}")
        if res.get("status") == "fork":
            lines.append("HUB NOTICE: the hub refused this bundle as a fork; a coordinator must resolve it")
            break
        if res.get("status") == "clash":
            lines.append(
                "HUB NOTICE: the hub holds this bundle unmerged (participant-id clash); a coordinator must resolve it"
            )
            break
    data, sig = client.receipt(me)
    lines.append(ward.apply_receipt(session, data, sig))
    if not rows:
        lines.insert(0, "nothing to push")
    return lines


def pull(session: Session, client: Client) -> list[str]:
    """Apply the latest receipt and every hub bundle waiting for this ward."""
    me = session.ctx.device
    lines = []
    data, sig = client.receipt(me)
    lines.append(ward.apply_receipt(session, data, sig))
    after = ward.last_hub_bundle(session.store)
    for item in client.outbox(me, after):
        cipher, bsig = client.fetch(me, int(item["bundle_seq"]))
        out = ward.apply_hub_bundle(session, cipher, bsig, f"hub bundle {item['bundle_seq']}")
        lines.append(out.message)
        if not out.ok:
            raise Refused(out.message)
    if len(lines) == 1:
        lines.append("no hub bundles waiting")
    return lines


@dataclass
class SyncState:
    state: str = "unknown"  # offline | syncing | synced | error
    at: str | None = None
    detail: str = ""

    def label(self) -> str:
        if self.state == "synced":
            return f"synced {self.at}"
        return self.state if not self.detail else f"{self.state}: {self.detail}"


class SyncService:
    """Probe the hub with backoff; push and pull whenever it answers."""

    def __init__(
        self,
        session: Session,
        client: Client,
        *,
        min_delay: float = 5.0,
        max_delay: float = 300.0,
        interval: float = 60.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.client = client
        self.min_delay, self.max_delay, self.interval = min_delay, max_delay, interval
        self.on_event = on_event or (lambda _m: None)
        self.state = SyncState()
        self.stop_event = threading.Event()

    def _set(self, state: str, detail: str = "") -> None:
        self.state = SyncState(state, iso_utc(now_utc()), detail)
        ward.set_state(
            self.session.store,
            "probe",
            json.dumps({"state": state, "at": self.state.at, "detail": detail, "url": self.client.url}),
        )

    def run_once(self) -> bool:
        """One probe; if the hub answers, push then pull. True when synced."""
        try:
            self.client.ping()
        except Offline as exc:
            self._set("offline", str(exc))
            self.on_event(f"offline: {exc}")
            return False
        self._set("syncing")
        try:
            for line in push(self.session, self.client) + pull(self.session, self.client):
                self.on_event(line)
        except Offline as exc:
            self._set("offline", str(exc))
            self.on_event(f"offline: {exc}")
            return False
        except WardError as exc:
            self._set("error", str(exc))
            self.on_event(f"error: {exc}")
            return False
        self._set("synced")
        self.on_event(f"synced at {self.state.at}")
        return True

    def run(self, max_rounds: int | None = None) -> None:
        delay = self.min_delay
        rounds = 0
        while not self.stop_event.is_set():
            ok = self.run_once()
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                return
            delay = self.interval if ok else min(delay * 2, self.max_delay) if rounds > 1 else delay
            self.stop_event.wait(delay)
            if ok:
                delay = self.min_delay

    def stop(self) -> None:
        self.stop_event.set()


def decode_receipt(body: dict[str, str]) -> tuple[bytes, bytes]:
    return base64.b64decode(body["data"]), base64.b64decode(body["sig"])
