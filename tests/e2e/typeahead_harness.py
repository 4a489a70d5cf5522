"""The real ward screens, one flow after another, for the type-ahead test in tmux.

    python typeahead_harness.py DATA_DIR RESULTS

Run by `test_typeahead_tmux.py` inside tmux while both cores are busy. The
app is the real `WardApp` (its key queue, its screens); only what it shows
after signing in differs: instead of the dashboard, the screen of the flow
asked for, fresh for every run. The test writes the flow's name into
`RESULTS.next`, waits for `{"ready": ...}` in RESULTS, sends the whole run
as ONE burst of keys ending in F12, and F12 writes what every field holds
(a JSON line) and sets up the next run. F12 is a key like the others: it is
run after every key typed before it, which is the guarantee under test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, Select, Static
from wardcrf.screens.administration_wizard import ADMINISTRATION, AdministrationWizard
from wardcrf.screens.app import WardApp
from wardcrf.screens.coldchain.receipt import ReceiptScreen
from wardcrf.screens.form_screen import FormScreen
from wardcrf.screens.login import LoginScreen
from wardcrf.screens.section_grid import GridCell, SectionGridScreen
from wardcrf.screens.ward import Ward, sign_in
from wardcrf.screens.widgets.entry_list import EntryList

from wardcrf.site import Site

PARTICIPANT = "WUH01-001"
VITALS = ("temp", "pulse", "resp", "oxysat", "sysbp", "diabp")
CHOICES = ("dry_ice", "intact", "frozen")
RECEIPT = ("lot", "product", "expiry", "release_ref", "quantity", "shipper", "condition")


class Home(Screen[None]):
    """Where a sign-in of the login flow lands."""

    def compose(self):
        yield Static("signed in")


class Harness(WardApp):
    CSS_PATH = str(Path(sys.modules[WardApp.__module__].__file__ or "").with_name("app.tcss"))
    BINDINGS: ClassVar[list[BindingType]] = [Binding("f12", "record", priority=True)]

    def __init__(self, site: Site, ward: Ward, results: Path) -> None:
        super().__init__(site, ward=ward, lock_after=24 * 3600)
        self.results = results
        self.runs = 0
        self.flow = ""
        self.login: Ward | None = None

    # the flows' screens instead of the dashboard
    def _signed_in(self, ward: Ward | None) -> None:
        assert ward is not None
        self.ward = ward
        self.call_later(self.next_run)

    def _write(self, line: dict[str, Any]) -> None:
        with self.results.open("a") as out:
            out.write(json.dumps(line) + "\n")

    async def next_run(self) -> None:
        self.runs += 1
        self.flow = Path(str(self.results) + ".next").read_text().strip()
        assert self.ward is not None
        if self.flow == "login":
            await self.push_screen(LoginScreen(self.site), self._logged_in)
        else:
            screen: Screen[Any] = {
                "ct": lambda: SectionGridScreen(self.ward, "ct_score", PARTICIPANT),
                "vitals": lambda: FormScreen(self.ward, "vitals", PARTICIPANT),
                "dose": lambda: self._dose_wizard(),
                "receipt": lambda: ReceiptScreen(self.ward),
            }[self.flow]()
            await self.push_screen(screen)
            if self.flow == "vitals":
                screen.query_one("#field-temp", Input).focus()
        self._write({"ready": self.runs, "flow": self.flow})

    def _dose_wizard(self) -> Screen[Any]:
        """The wizard `d` opens on the participant's screen: the administration wizard MEXCOVID 1.0's regimen
        drives (format 1's own dose wizard is gone)."""
        assert self.ward is not None
        return AdministrationWizard(self.ward, PARTICIPANT)

    def _logged_in(self, ward: Ward | None) -> None:
        self.login = ward
        self.push_screen(Home())

    def values(self) -> dict[str, Any]:
        screen = self.screen
        if self.flow == "ct":
            assert isinstance(screen, SectionGridScreen)  # the segments in the form's order, as the grid lays them
            return {s: screen.query_one(f"#field-{s}", GridCell).value for s in screen.grid.fields}
        if self.flow == "vitals":
            return {n: screen.query_one(f"#field-{n}", Input).value for n in VITALS}
        if self.flow == "receipt":
            got: dict[str, Any] = {n: screen.query_one(f"#cc-{n}", Input).value for n in RECEIPT}
            got["kits"] = screen.query_one("#cc-kits", EntryList).entries
            got["choices"] = {n: str(screen.query_one(f"#cc-{n}", Select).value) for n in CHOICES}
            return got
        if self.flow == "dose" and isinstance(screen, AdministrationWizard):
            screen.remember()
            plan, adm = screen.plan, screen.values[ADMINISTRATION]
            after = [a for a in plan.after if plan.check is None or a.code != plan.check.code]
            check = screen.values.get(f"after:{plan.check.code}", {}) if plan.check is not None else {}
            return {
                "step": screen.step,
                "kit": screen.kit.kit if screen.kit is not None else None,
                "pre": {n: screen.values[f"before:{plan.before[0].code}"].get(n) for n in VITALS[:4]},
                "post": {n: screen.values[f"after:{after[0].code}"].get(n) for n in VITALS[:4]},
                "end": adm.get(plan.roles.get("end", "")),
                "events": check.get(plan.check.field) if plan.check is not None else None,
            }
        if self.flow == "login":
            return {"signed_in": self.login.user if self.login else None, "screen": type(screen).__name__}
        return {}

    async def action_record(self) -> None:
        self._write({"run": self.runs, "flow": self.flow, "values": self.values()})
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        if self.login is not None:
            self.login.close()
            self.login = None
        await self.next_run()


def main() -> None:
    data_dir, results = Path(sys.argv[1]), Path(sys.argv[2])
    site = Site.open(data_dir)
    ward = sign_in(site, "clinician", "test-password-1")
    Harness(site, ward, results).run()


if __name__ == "__main__":
    main()
