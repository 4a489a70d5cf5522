"""Receipt of a shipment: the lot's label, the kits scanned, the arrival check, the paperwork.

The lot is registered and its kits received in one service call
(`services.receive_lot`, all or nothing); typing a lot number that is
already registered fills its label data. Kit ids are scanned one after
another (each ends with Enter). The arrival condition (dry ice, container,
frozen) and a failing transit log quarantine the kits, as the service
decides. The courier signs with a photo of the delivery sheet when they
have no account here, or in their own name when they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.message import Message
from textual.widgets import Input

from wardcrf import ids
from wardcrf import protocol as protocols
from wardcrf.coldchain import services
from wardcrf.errors import UsageError

from ..i18n import catalogue, language, t
from ..ward import Ward
from ..widgets.fields import FieldSpec, whole_number
from .shared import now_text
from .transfer import TransferScreen


def whole_kits(f: FieldSpec, value: Any) -> str:
    """The quantity stated: a whole number of kits (the service checks it equals the kits scanned)."""
    text = str(value or "").strip()
    return "" if whole_number(text) else t("cc.bad_quantity", value=text)


def yes_or_no(f: FieldSpec, value: Any) -> str:
    """An arrival check the person must answer: never left blank (blank is not "no")."""
    return "" if value in (True, False) else t("cc.say_yes_no", field=f.label_in(language()))


class ReceiptScreen(TransferScreen):
    """Receive a shipment of kits (pharmacist, clinician, investigator)."""

    TITLE_ID = "cc.receipt"
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("lot", "cc.f_lot", hint="cc.h_lot"),
        FieldSpec("product", "cc.f_product"),
        FieldSpec("expiry", "cc.f_expiry", hint="cc.h_date"),
        FieldSpec("release_ref", "cc.f_release_ref"),
        FieldSpec("kits", "cc.f_kits", kind="kits", hint="cc.h_scan"),
        FieldSpec("quantity", "cc.f_quantity", check=whole_kits),
        FieldSpec("shipper", "cc.f_shipper"),
        FieldSpec("at", "cc.f_received_at", hint="cc.h_time"),
        FieldSpec("to", "cc.f_to", hint="cc.h_location"),
        FieldSpec("dry_ice", "cc.f_dry_ice", kind="boolean", check=yes_or_no),
        FieldSpec("intact", "cc.f_intact", kind="boolean", check=yes_or_no),
        FieldSpec("frozen", "cc.f_frozen", kind="boolean", check=yes_or_no),
        FieldSpec("condition", "cc.f_arrival", hint="cc.h_arrival"),
        FieldSpec("logger_serial", "cc.f_logger_serial"),
        FieldSpec("logger_file", "cc.f_logger_file", kind="path", hint="cc.h_browse"),
        FieldSpec("courier", "cc.f_courier", hint="cc.h_external"),
        FieldSpec("courier_user", "cc.f_courier_user"),
        FieldSpec("received_by", "cc.f_received_by"),
        FieldSpec("photos", "cc.f_photos", kind="photos", hint="cc.h_photo"),
        FieldSpec("sign_later", "cc.f_sign_later", kind="boolean"),
    )

    @dataclass
    class LotKnown(Message):
        """A lot registered before: its label data (product, expiry, release, kits)."""

        info: services.LotInfo

    def __init__(
        self, ward: Ward, initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        self.products = ward.call(services.products_for)
        """The protocol's products a lot may belong to: a choice when there are several."""
        super().__init__(ward, initial, focus=focus)

    @property
    def choosing_product(self) -> bool:
        return len(self.products) > 1

    def form_fields(self) -> list[FieldSpec]:
        """The receipt's fields; with several products, the lot's product is chosen from them (code,
        name and storage range), never typed."""
        if not self.choosing_product:
            return list(self.FIELDS)
        choice = FieldSpec(
            "product",
            kind="choice",
            field=protocols.Field(
                name="product",
                type="choice",
                label=catalogue()["cc.f_product"],
                required=True,
                choices=tuple(
                    protocols.Choice(p["code"], {"en": f"{p['code']}: {p['name']} ({p['range']})"})
                    for p in self.products
                ),
            ),
        )
        return [choice if f.name == "product" else f for f in self.FIELDS]

    def defaults(self) -> dict[str, Any]:
        # The site's one storage unit, else blank: the person names the place (never a silent
        # "pharmacy", which starts a custody clock nobody knows about; issue 14, finding 7).
        default_to = self.ward.call(services.receipt_default)
        return {
            "at": now_text(self.ward),
            "to": default_to or "",
            "received_by": self.ward.user,
            "sign_later": False,
        }

    @on(Input.Submitted, "#cc-lot")
    def _lot_entered(self, event: Input.Submitted) -> None:
        """A lot registered before fills its label data (product, expiry, release, kits)."""
        if event.value.strip():
            self.look_up_lot(event.value)

    @work(thread=True, exclusive=True, group="cc-lot")
    def look_up_lot(self, lot: str) -> None:
        info = self.ward.call(services.registered_lot, lot)
        if info:
            self.post_message(self.LotKnown(info))

    @on(LotKnown)
    def _lot_known(self, message: LotKnown) -> None:
        info = message.info
        self.set_value("product", info["product_code"] if self.choosing_product else info["product"])
        for name in ("expiry", "release_ref"):
            self.set_value(name, str(info[name]))
        self._say(t("cc.lot_known", lot=info["lot"], n=len(info["kits"]), kits=", ".join(info["kits"])))

    def parties(self) -> list[tuple[str, str]]:
        out = [(self.text("received_by") or self.ward.user, "received")]
        if self.text("courier_user"):
            out.append((self.text("courier_user"), "handed over"))
        return out

    def what(self) -> str:
        kits = self.items("kits")
        return t("cc.receipt_what", shipper=self.text("shipper"), lot=ids.key(self.text("lot")), n=len(kits))

    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        return self.ward.call(services.receive_lot, **self.arguments(), passwords=passwords)

    def rehearse(self) -> services.Recorded:
        return self.ward.call(services.preflight, services.receive_lot, **self.arguments())

    def arguments(self) -> dict[str, Any]:
        """The receipt as `services.receive_lot` takes it (without the passwords)."""
        quantity_text = self.text("quantity")
        if not whole_number(quantity_text):
            raise UsageError(f"quantity {quantity_text!r} is not a whole number of kits")
        quantity = int(quantity_text)
        flags = {name: self.flag(name) for name in ("dry_ice", "intact", "frozen")}
        logger_file = self.text("logger_file").removeprefix("@")
        chosen = self.text("product")
        return dict(
            lot=self.text("lot"),
            product=chosen,
            product_code=(chosen or None) if self.choosing_product else None,
            expiry=self.text("expiry"),
            release_ref=self.text("release_ref"),
            quantity=quantity,
            kits=self.items("kits"),
            shipper_id=self.text("shipper"),
            received_at=self.text("at"),
            to_location=self.text("to"),
            delivered_by_external=self.text("courier") or None,
            delivered_by_user=self.text("courier_user") or None,
            received_by_user=self.text("received_by") or None,
            dry_ice=flags["dry_ice"],
            container_intact=flags["intact"],
            product_frozen=flags["frozen"],
            logger_serial=self.text("logger_serial") or None,
            logger_file=Path(logger_file).expanduser() if logger_file else None,
            photos=self.items("photos"),
            condition=self.text("condition"),
        )
