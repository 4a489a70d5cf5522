"""The top line of every signed-in screen: site, user, role, local time."""

from __future__ import annotations

from textual.widgets import Static

from .i18n import t
from .ward import Ward


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
        now = self.ward.local_now().strftime("%Y-%m-%d %H:%M")
        self.update(
            f"{self.ward.session.ctx.site} · {self.title} · {self.ward.full_name}"
            f" ({t('role.' + self.ward.role)}) · {now}"
        )
