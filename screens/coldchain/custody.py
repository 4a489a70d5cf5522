"""One kit's chain of custody, scanned or typed, and whether it may be dosed now.

Scan the kit (the scanner's Enter shows it) or type a kit id or a lot
number (then every kit of the lot). For each kit: its receipt and
handovers (who to whom, from where to where, when, each signature with its
state, each photo with its hash check), each stay between them (where, from
… to, the temperatures logged there: min … max and MKT), its thaw, and the
custody problems the domain finds. "Dosable now" is the domain's own
pre-dose gate (`custody.dose_problems` at the current time), so what this
screen says is what the dose form will say. `ctrl+t` records the shown
kit's thaw (roles with `coldchain.record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from wardcrf.clock import now_utc
from wardcrf.coldchain import custody, reports
from wardcrf.errors import WardError

from ..i18n import domain_word, t
from ..keys import BACK, LANGUAGE
from ..results import Refused, post_outcome
from ..ward import Ward
from ..widgets.footer import WardFooter
from ..widgets.status import StatusBar
from ..widgets.typeahead import WardInput
from .shared import local_epoch, local_time

INDENT = "\u00a0\u00a0"
"""Indentation that survives rendering (leading plain spaces are dropped when a line wraps)."""


class CustodyScreen(Screen[None]):
    """Chain of custody per kit, with the dose gate's verdict now."""

    CSS_PATH = "custody.tcss"
    AUTO_FOCUS = "#cu-kit"
    BINDINGS: ClassVar[list[BindingType]] = [
        BACK,
        Binding("ctrl+t", "thaw", "key.cc_thaw"),
        LANGUAGE,
    ]

    @dataclass
    class Loaded(Message):
        """Each kit's chain and dose problems (a lot gives every kit of the lot)."""

        report: list[reports.KitReport]

    def __init__(self, ward: Ward, kit: str = "") -> None:
        super().__init__()
        self.ward = ward
        self.kit = kit
        self.report: list[reports.KitReport] | None = None
        self.message = ""

    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t("cc.custody"))
        with Horizontal(id="cu-scan"):
            yield Label(t("cc.f_scan_kit"), classes="cc-label")
            yield WardInput(self.kit, id="cu-kit", compact=True, placeholder=t("cc.h_scan_kit"))
        with VerticalScroll(id="cu-body"):
            yield Static(self.message or t("cc.custody_help"), id="cu-chain")
        yield WardFooter()

    def on_mount(self) -> None:
        if self.kit:
            self.show_kit(self.kit)

    def remember(self) -> None:
        if self.is_mounted:
            self.kit = self.query_one("#cu-kit", Input).value

    def relabelled(self) -> None:
        if self.report is not None:
            self._show_report(self.report)

    def shown_kit(self) -> str | None:
        """The one registered kit on screen (None for none, an unknown kit, or a whole lot)."""
        if self.report is None or len(self.report) != 1 or self.report[0]["chain"].lot is None:
            return None
        return str(self.report[0]["chain"].kit)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "thaw":
            # offered to the roles that may record it, for one shown kit; the service refuses anyway
            return self.ward.can("coldchain.record") and self.shown_kit() is not None
        return True

    def action_thaw(self) -> None:
        """Record the shown kit's thaw (ctrl+t); its chain is shown again afterwards."""
        kit = self.shown_kit()
        if kit is None:
            return
        from .thaw import ThawScreen

        def done(result: Any) -> None:
            if result is not None:
                self.show_kit(kit)

        self.app.push_screen(ThawScreen(self.ward, kit), done)

    @on(Input.Submitted, "#cu-kit")
    def _scanned(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.show_kit(event.value)

    def show_kit(self, raw: str) -> None:
        self.query_one("#cu-chain", Static).update(t("cc.loading"))
        self.load(raw)

    @work(thread=True, exclusive=True, group="cc-custody")
    def load(self, raw: str) -> None:
        now = int(now_utc().timestamp())
        post_outcome(self, lambda: self.ward.call(reports.kit_report, raw, now), self.Loaded, catch=WardError)

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._show_report(message.report)

    @on(Refused)
    def _failed(self, refused: Refused) -> None:
        message = refused.text
        self.report = None
        self.query_one("#cu-chain", Static).update(Text(message, style="bold red"))
        self.refresh_bindings()

    def _show_report(self, report: list[reports.KitReport]) -> None:
        self.report = report
        out = Text()
        for item in report:
            self._render_chain(out, item["chain"], item["dose_problems"], item.get("current"))
        self.query_one("#cu-chain", Static).update(out)
        self.query_one("#cu-kit", Input).value = ""
        self.refresh_bindings()

    def _render_chain(
        self,
        out: Text,
        chain: custody.Chain,
        dose_problems: list[str],
        item_current: reports.CurrentStay | None,
    ) -> None:
        ward = self.ward
        if chain.lot is None:
            out.append(t("cc.kit_unknown", kit=chain.kit) + "\n", style="bold red")
            for p in chain.problems:
                out.append(f"{INDENT}{p}\n", style="red")
            return
        out.append(t("cc.kit_header", kit=chain.kit, lot=chain.lot), style="bold")
        out.append(" · ")
        if chain.complete:
            out.append(t("cc.chain_complete"), style="green")
        else:
            out.append(t("cc.chain_broken"), style="bold red")
        out.append("\n")
        if not dose_problems:
            out.append(t("cc.dosable_yes") + "\n", style="bold green")
        else:
            out.append(t("cc.dosable_no", problem=dose_problems[0]) + "\n", style="bold yellow")
        for link in chain.links:
            d = link.detail
            mark = "✓ " if link.ok else "✗ "
            style = "" if link.ok else "red"
            if link.kind == "stay":
                temps = d.get("temperatures")
                line = t(
                    "cc.stay_line",
                    where=d["location"],
                    start=local_time(ward, d["start"]),
                    end=local_time(ward, d["end"]),
                )
                if temps:
                    line += " · " + t(
                        "cc.stay_temps",
                        min=temps["min_c"],
                        max=temps["max_c"],
                        mkt=temps["mkt_c"],
                        n=temps["readings"],
                    )
                out.append(INDENT + mark + line + "\n", style=style)
            elif link.kind == "thaw":
                out.append(
                    INDENT
                    + "✓ "
                    + t(
                        "cc.thaw_line",
                        who=link.what,
                        start=local_time(ward, d["start"]),
                        end=local_time(ward, d["end"]),
                    )
                    + "\n"
                )
            elif link.kind == "preparation":
                use_by = d.get("use_by")
                out.append(
                    INDENT
                    + "✓ "
                    + t(
                        "cc.preparation_line",
                        who=link.what,
                        start=local_time(ward, d["start"]),
                        end=local_time(ward, d["end"]),
                        use_by=t("cc.use_by", time=local_time(ward, use_by)) if use_by else "",
                    )
                    + "\n"
                )
            else:
                out.append(
                    f"{mark}{domain_word('cc_kind', link.kind)} {local_time(ward, d['at'])} · {link.what}\n",
                    style="bold " + style if style else "bold",
                )
                out.append(f"{INDENT * 2}{d['from_location']} → {d['to_location']}")
                if d.get("condition"):
                    out.append(f" · {d['condition']}")
                out.append("\n")
                for s in d["signatures"]:
                    ok = s["state"] == "valid"
                    out.append(
                        INDENT * 2
                        + ("✓ " if ok else "✗ ")
                        + t(
                            "cc.signature_line",
                            meaning=t("meaning." + s["meaning"].replace(" ", "_")),
                            name=s["name"],
                            user=s["user"],
                            time=local_time(ward, s["signed_at"]),
                            state=domain_word("cc_sig", s["state"]),
                        )
                        + "\n",
                        style="" if ok else "red",
                    )
                for photo in d["photos"]:
                    ok = photo["state"] == "ok"
                    out.append(
                        INDENT * 2
                        + ("✓ " if ok else "✗ ")
                        + t(
                            "cc.photo_line",
                            sha=photo["sha256"][:12],
                            state=domain_word("cc_photo", photo["state"]),
                        )
                        + "\n",
                        style="" if ok else "red",
                    )
        current = item_current
        if current is not None:
            line = t("cc.stay_now", where=current["location"], start=local_epoch(ward, current["since"]))
            temps = current["temperatures"]
            if temps:
                line += " · " + t(
                    "cc.stay_temps",
                    min=temps["min_c"],
                    max=temps["max_c"],
                    mkt=temps["mkt_c"],
                    n=temps["readings"],
                )
            out.append(INDENT + "→ " + line + "\n")
        problems = list(dict.fromkeys([*chain.problems, *dose_problems]))
        if problems:
            out.append(t("cc.problems") + "\n", style="bold")
            for p in problems:
                out.append(f"{INDENT}✗ {p}\n", style="red")
        out.append("\n")
