"""The top line of every signed-in screen: site, user, role, local time."""

from __future__ import annotations

from rich.cells import cell_len
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
        local = self.ward.local_now()
        who = f"{self.ward.session.ctx.site} · {self.title} · {self.ward.full_name}"
        role = f" ({t('role.' + self.ward.role)})"
        # The time is never cut: with the sync state shown the year goes; where the line is still wider than
        # the bar (a participant's wizard at 80 columns), the year goes, then the role, then both.
        lines = [
            f"{who}{role} · {local:%Y-%m-%d %H:%M}{sync}",
            f"{who}{role} · {local:%m-%d %H:%M}{sync}",
            f"{who} · {local:%Y-%m-%d %H:%M}{sync}",
            f"{who} · {local:%m-%d %H:%M}{sync}",
        ]
        if sync:
            lines = lines[1::2]
        room = (self.size.width or self.app.size.width) - 2
        self.update(next((line for line in lines if cell_len(line) <= room), lines[-1]))

    def on_resize(self) -> None:
        self.show()

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
