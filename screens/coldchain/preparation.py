"""A kit prepared at the pharmacy, recorded and e-signed by the pharmacist (`p` on the cold-chain home).

A product whose protocol declares a preparation step at the pharmacy
(`preparation = [{ ..., at = "pharmacy", fields = { ... } }]`: thaw, dilute)
is prepared there before its kit goes to the bedside; the bedside
administration's custody gate then requires this record (signed, within the
prepared product's use-within) and no longer asks for a thaw at the bedside.

The kit is scanned (Enter), the start and end typed (`ctrl+t`: now), then the
fields the protocol asks with the steps (the diluted volume, the diluent...):
every product's declared fields are laid out at once, each labelled with its
unit and, when several products declare some, its product, so keys typed in a
burst land where they were typed (nothing is rebuilt after the scan). On save
(`ctrl+s`) every rule runs first without saving (`services.record_preparation`
with `dry_run`), then the pharmacist signs ("authored") with their password
in the signature dialog, then the record and its signature are saved in one
transaction. A refusal is shown as the service words it and marks the field
it names; nothing typed is lost.
"""

from __future__ import annotations

from dataclasses import replace
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


class PreparationScreen(TransferScreen):
    """Record a kit's preparation at the pharmacy (pharmacist), signed."""

    TITLE_ID = "cc.preparation"
    AUTO_FOCUS = "#cc-kit"
    # ctrl+t: "time now", the one key for it on every screen (the wizards' too), shown in the footer.
    # Not ctrl+n: that is "next step" in the wizards, and here it overwrote a typed time.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+t", "stamp", "key.cc_now")]
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("kit", "cc.f_kit", kind="kit", hint="cc.h_scan_one"),
        FieldSpec("start", "cc.f_prep_start", hint="cc.h_time_now"),
        FieldSpec("end", "cc.f_prep_end", hint="cc.h_time_now"),
    )

    def __init__(
        self, ward: Ward, kit: str = "", initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        super().__init__(ward, {**({"kit": kit} if kit else {}), **(initial or {})}, focus=focus)
        self.declared = self._declared(ward.call(services.preparation_fields))
        """The fields the protocol asks with its pharmacy steps (every product's), as rows of this form."""

    @staticmethod
    def _declared(found: list[services.PreparationField]) -> list[FieldSpec]:
        several = len({f.product for f in found}) > 1
        out: list[FieldSpec] = []
        seen: set[str] = set()
        for f in found:
            if f.field.name in seen:
                continue
            seen.add(f.field.name)
            extra = ", ".join(x for x in ((f.product if several else ""), f.field.unit or "") if x)
            label = (
                {lang: f"{text} ({extra})" for lang, text in f.field.label.items()}
                if extra
                else f.field.label
            )
            out.append(FieldSpec.of(replace(f.field, label=label)))
        return out

    def form_fields(self) -> list[FieldSpec]:
        return [*self.FIELDS, *self.declared]

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
        return [(self.ward.user, "authored")]  # the pharmacist who prepared it signs it

    def what(self) -> str:
        return t("cc.preparation_what", kit=ids.key(self.text("kit")))

    def _values(self) -> dict[str, Any]:
        saving = self._saving_values()
        names = {f.name for f in self.declared}
        return {k: v for k, v in saving.items() if k in names and v not in (None, "", [])}

    def rehearse(self) -> services.Recorded:
        return self.ward.call(
            services.record_preparation,
            self.text("kit"),
            start=self.text("start"),
            end=self.text("end"),
            values=self._values(),
            dry_run=True,
        )

    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        return self.ward.call(
            services.record_preparation,
            self.text("kit"),
            start=self.text("start"),
            end=self.text("end"),
            values=self._values(),
            password=passwords.get(self.ward.user),
        )
