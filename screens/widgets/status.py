"""The top line of every signed-in screen: site, user, role, local time."""

from __future__ import annotations

from textual.widgets import Static

from ..i18n import t
from ..ward import Ward


class StatusBar(Static):
    """Who is signed in where, and the ward's local time (refreshed each 30 s)."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $primary-muted;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, ward: Ward, title: str) -> None:
        super().__init__()
        self.ward = ward
        self.title = title

    def on_mount(self) -> None:
        self.show()
        self.set_interval(30, self.show)

    def show(self) -> None:
        sync = self.sync_text()
        # With the sync state shown, the year goes so the line still fits 80 columns.
        now = self.ward.local_now().strftime("%m-%d %H:%M" if sync else "%Y-%m-%d %H:%M")
        self.update(
            f"{self.ward.session.ctx.site} · {self.title} · {self.ward.full_name}"
            f" ({t('role.' + self.ward.role)}) · {now}{sync}"
        )

    def sync_text(self) -> str:
        """' · ⇅ offline / syncing / synced HH:MM' while the app syncs in the background."""
        state = getattr(self.app, "sync_state", None)
        if state is None:
            return ""
        return " · " + sync_label(state.state, state.at, self.ward)


def sync_label(state: str, at: str | None, ward: Ward) -> str:
    """A background-sync state in the UI language (times in the ward's zone)."""
    if state == "synced" and at:
        from datetime import datetime

        from wardcrf.clock import zone

        local = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(zone(ward.session.ctx.zone))
        return t("bgsync.synced", time=local.strftime("%H:%M"))
    if state in ("offline", "syncing", "error"):
        return t("bgsync." + state)
    return state
