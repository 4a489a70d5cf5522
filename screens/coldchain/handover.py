"""A handover: kits change hands and place, signed by both parties.

Any custody change (pharmacy → freezer, freezer → bedside, bedside →
disposal). Each party with an account signs in their own name; a party
without one (a porter, a courier) is named and a photo of the sheet they
signed is attached. The service checks the kits are where the handover
takes them from, later than their last step, and not discarded.
"""

from __future__ import annotations

from typing import Any, ClassVar

from wardcrf.coldchain import services

from ..i18n import t
from ..widgets.fields import FieldSpec
from .shared import now_text
from .transfer import TransferScreen


class HandoverScreen(TransferScreen):
    """Record a custody change (pharmacist, clinician, investigator)."""

    TITLE_ID = "cc.handover"
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("kits", "cc.f_kits", kind="kits", hint="cc.h_scan"),
        FieldSpec("at", "cc.f_at", hint="cc.h_time"),
        FieldSpec("from", "cc.f_from", hint="cc.h_location"),
        FieldSpec("to", "cc.f_to", hint="cc.h_location"),
        FieldSpec("from_user", "cc.f_from_user"),
        FieldSpec("from_external", "cc.f_from_external", hint="cc.h_external"),
        FieldSpec("to_user", "cc.f_to_user"),
        FieldSpec("to_external", "cc.f_to_external", hint="cc.h_external"),
        FieldSpec("condition", "cc.f_condition"),
        FieldSpec("photos", "cc.f_photos", kind="photos", hint="cc.h_photo"),
        FieldSpec("sign_later", "cc.f_sign_later", kind="boolean"),
    )

    def defaults(self) -> dict[str, Any]:
        return {"at": now_text(self.ward), "from_user": self.ward.user, "sign_later": False}

    def parties(self) -> list[tuple[str, str]]:
        out = []
        if self.text("from_user"):
            out.append((self.text("from_user"), "handed over"))
        if self.text("to_user"):
            out.append((self.text("to_user"), "received"))
        return out

    def what(self) -> str:
        kits = self.items("kits")
        return t("cc.handover_what", kits=", ".join(kits), src=self.text("from"), dst=self.text("to"))

    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        return self.ward.call(services.record_handover, **self.arguments(), passwords=passwords)

    def rehearse(self) -> services.Recorded:
        return self.ward.call(services.preflight, services.record_handover, **self.arguments())

    def arguments(self) -> dict[str, Any]:
        """The handover as `services.record_handover` takes it (without the passwords)."""
        return dict(
            kits=self.items("kits"),
            at=self.text("at"),
            from_location=self.text("from"),
            to_location=self.text("to"),
            from_user=self.text("from_user") or None,
            from_external=self.text("from_external") or None,
            to_user=self.text("to_user") or None,
            to_external=self.text("to_external") or None,
            condition=self.text("condition"),
            photos=self.items("photos"),
        )
