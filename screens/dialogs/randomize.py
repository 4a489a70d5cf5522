"""Randomize one participant: the stratification levels (if any), then one confirmation.

Opened by `r` on the participant screen, and by itself right after a
participant's enrollment is saved where a list waits for them (Esc leaves
it for later: `r`).

Dismissed with the levels chosen ({factor: level}, empty when the trial
stratifies by site only), or None on Esc. Allocation is irreversible, so it
asks for ctrl+s, never a bare Enter: a scanner's trailing Enter or a key
typed ahead cannot randomize anyone. The levels are the ones the laptop's
list holds (`randomization.service.factors_needed`), so nothing else can be
chosen; the service checks them again.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..i18n import t
from ..widgets.footer import WardFooter
from ..widgets.typeahead import WardSelect


class RandomizeDialog(ModalScreen[dict[str, str] | None]):
    """Choose each stratification factor's level, then ctrl+s to randomize."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "confirm", "randomize.key_confirm"),
        Binding("escape", "cancel", "key.cancel"),
    ]

    def __init__(
        self,
        participant: str,
        factors: dict[str, list[str]],
        *,
        known: list[tuple[str, str, str]] | None = None,
        after_enrollment: bool = False,
    ) -> None:
        super().__init__()
        self.participant = participant
        self.factors = factors
        self.known = known or []
        self.after_enrollment = after_enrollment

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("randomize.title", participant=self.participant), classes="dialog-title")
            if self.after_enrollment:
                yield Static(t("randomize.after_enrollment", participant=self.participant))
            for name, level, source in self.known:
                yield Static(t("randomize.known", factor=name, level=level, source=source), markup=False)
            for name, levels in self.factors.items():
                yield Static(t("randomize.factor", factor=name))
                yield WardSelect([(lv, lv) for lv in levels], id=f"factor-{name}", prompt=t("form.choose"))
            yield Static(t("randomize.confirm"))
            yield Static("", id="randomize-message", classes="refusal")
        yield WardFooter()

    def on_mount(self) -> None:
        selects = list(self.query(WardSelect))
        if selects:
            selects[0].focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        levels: dict[str, str] = {}
        for name in self.factors:
            select = self.query_one(f"#factor-{name}", WardSelect)
            if select.is_blank():
                self.query_one("#randomize-message", Static).update(t("randomize.need_level", factor=name))
                return
            levels[name] = str(select.value)
        self.dismiss(levels)
