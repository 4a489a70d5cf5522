"""Thaw and reconstitution of one kit at the bedside, recorded by the signed-in user.

The protocol requires a recorded thaw before a dose (the dose gate checks
it), so the ward nurse or pharmacist records it here rather than at the
CLI. The kit id is scanned (a burst of keys ending with Enter, normalised
by the domain's own `scanned_id`, so what the field shows is what is
stored; a ``kit`` field of the form framework: an id that is not one is
refused at the scan and the cursor stays) or carried over from the custody view. The end defaults to now;
`ctrl+t` stamps the focused time field with now. The service
(`services.record_thaw`) runs in a worker and refuses an unknown kit, a kit
not at the bedside at the thaw's start, a kit already thawed (never
refrozen) and an end not after the start; the refusal is shown as it words
it and nothing typed is lost (nor on a lock or a language switch).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

from wardcrf import ids
from wardcrf.coldchain import services

from ..i18n import t
from ..ward import Ward
from ..widgets.fields import FieldSpec
from .shared import now_text, stamped_field
from .transfer import TransferScreen


class ThawScreen(TransferScreen):
    """Record a kit's thaw and reconstitution (pharmacist, clinician, investigator)."""

    TITLE_ID = "cc.thaw"
    AUTO_FOCUS = "#cc-kit"
    # ctrl+t: "time now", the one key for it on every screen (the wizards' too), shown in the footer.
    # Not ctrl+n: that is "next step" in the wizards, and here it overwrote a typed time.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+t", "stamp", "key.cc_now")]
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("kit", "cc.f_kit", kind="kit", hint="cc.h_scan_one"),
        FieldSpec("start", "cc.f_thaw_start", hint="cc.h_time_now"),
        FieldSpec("end", "cc.f_thaw_end", hint="cc.h_time_now"),
        FieldSpec("reconstitution", "cc.f_reconstitution", hint="cc.h_reconstitution"),
    )

    def __init__(
        self, ward: Ward, kit: str = "", initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        super().__init__(ward, {**({"kit": kit} if kit else {}), **(initial or {})}, focus=focus)

    def defaults(self) -> dict[str, Any]:
        return {"end": now_text(self.ward)}

    def on_mount(self) -> None:
        if self.text("kit"):
            self.query_one("#cc-start", Input).focus()

    def action_stamp(self) -> None:
        """Put now in the focused time field (the end when none is focused), ctrl+t."""
        focused = self.focused
        self.set_value(stamped_field(focused.id if focused is not None else None), now_text(self.ward))

    def parties(self) -> list[tuple[str, str]]:
        return []  # recorded by the signed-in user; no co-signature

    def what(self) -> str:
        return t("cc.thaw_what", kit=ids.key(self.text("kit")))

    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        event = self.ward.call(
            services.record_thaw,
            self.text("kit"),
            start=self.text("start"),
            end=self.text("end"),
            reconstitution=self.text("reconstitution") or None,
        )
        return services.Recorded(event=event, pending_signatures=[], warnings=[])
