"""Register a monitored storage unit (freezer): id, name, where it stands, its allowed range.

The range, target and logger zone left blank take the protocol's range
and the site's zone, as `services.add_unit` decides; the placeholders
show what those are (read in a worker when the screen opens). Numbers are
checked on the screen first (a typed "-20,5" is read as -20.5); everything
else — the id's form, a unit already registered, an empty range, an
unknown zone, the interval's bounds, the role — is the service's to
refuse, shown as it words it, with nothing typed lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.message import Message
from textual.widgets import Input

from wardcrf.coldchain import config, reports, services

from ..i18n import language, t
from ..ward import Ward
from ..widgets.fields import FieldSpec, whole_number
from .transfer import TransferScreen

NUMBER_FIELDS = ("low", "high", "target")


def number(text: str) -> float | None:
    """A °C value as typed (blank: None, the protocol's; a decimal comma is read as a point).

    Raises ValueError for anything else: words, "nan", "inf", digits of other scripts.
    """
    text = text.strip().replace(",", ".").replace("−", "-")
    if not text:
        return None
    if not text.isascii():
        raise ValueError(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def temperature(f: FieldSpec, value: Any) -> str:
    """A °C limit or target as typed: a number, or blank for the protocol's."""
    text = str(value or "").strip()
    try:
        number(text)
    except ValueError:
        return t("cc.bad_number", field=f.label_in(language()), value=text)
    return ""


def minutes(f: FieldSpec, value: Any) -> str:
    """The logging interval: a whole number of minutes (the service checks its bounds)."""
    text = str(value or "").strip()
    return "" if whole_number(text) else t("cc.bad_interval", value=text)


class UnitScreen(TransferScreen):
    """Register a storage unit (pharmacist, admin: `coldchain.configure`)."""

    TITLE_ID = "cc.unit_add"
    AUTO_FOCUS = "#cc-unit"
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("unit", "cc.f_unit_id", hint="cc.h_unit_id"),
        FieldSpec("name", "cc.f_unit_name", hint="cc.h_unit_name"),
        FieldSpec("location", "cc.f_unit_location", hint="cc.h_unit_location"),
        FieldSpec("low", "cc.f_low", hint="cc.h_protocol", check=temperature),
        FieldSpec("high", "cc.f_high", hint="cc.h_protocol", check=temperature),
        FieldSpec("target", "cc.f_target", hint="cc.h_protocol", check=temperature),
        FieldSpec("zone", "cc.f_zone", hint="cc.h_site_zone"),
        FieldSpec("interval", "cc.f_interval", hint="cc.h_interval", check=minutes),
    )

    @dataclass
    class DefaultsLoaded(Message):
        """What a new unit gets unless the form says otherwise (the placeholders)."""

        found: reports.UnitDefaults

    def __init__(
        self, ward: Ward, initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        super().__init__(ward, initial, focus=focus)
        self.protocol: reports.UnitDefaults | None = None

    def defaults(self) -> dict[str, Any]:
        return {"interval": str(config.DEFAULT_INTERVAL_MINUTES)}

    def on_mount(self) -> None:
        self.load_defaults()

    def relabelled(self) -> None:
        self._show_defaults()

    @work(thread=True, exclusive=True, group="cc-unit-defaults")
    def load_defaults(self) -> None:
        try:
            found = self.ward.call(reports.unit_defaults)
        except Exception:  # the placeholders are a courtesy; the service applies the defaults anyway
            return
        self.post_message(self.DefaultsLoaded(found))

    @on(DefaultsLoaded)
    def _defaults_loaded(self, message: DefaultsLoaded) -> None:
        found = message.found
        self.protocol = found
        self._show_defaults()

    def _show_defaults(self) -> None:
        found = self.protocol
        if not found:
            return
        shown: dict[str, object] = dict(found)
        for name in NUMBER_FIELDS:
            self.query_one(f"#cc-{name}", Input).placeholder = t(
                "cc.h_protocol_value", value=f"{shown[name]:g}"
            )
        self.query_one("#cc-zone", Input).placeholder = t("cc.h_site_zone_value", zone=found["zone"])

    def parties(self) -> list[tuple[str, str]]:
        return []  # a configuration step, recorded by the signed-in user

    def what(self) -> str:
        return t("cc.unit_add")

    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        event = self.ward.call(
            services.add_unit,
            self.text("unit"),
            name=self.text("name"),
            location=self.text("location"),
            low_c=number(self.text("low")),
            high_c=number(self.text("high")),
            target_c=number(self.text("target")),
            zone=self.text("zone") or None,
            interval_minutes=int(self.text("interval")),
        )
        return services.Recorded(event=event, pending_signatures=[], warnings=[])
