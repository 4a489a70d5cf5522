"""Checks a hub's import asks once per kind of event in a run, and what each must still tell apart.

- `authority.check_import` asks a type's origin and role checks once per (type, role) in a run: a
  second role on the same type, or the same role on a second type, is asked again and refused in
  its own words; nothing carries from one run (one bundle, one signing device's kind) to the next;
- `sync.bundle.check_chain` checks an envelope's per-device fields (device, site, role, user, zone,
  time zone offset, type) once per combination in a bundle: a line differing in any one of them is
  checked whole, and refused in the words the whole check gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ledgerkit
import pytest
from test_import_parse_once import _fields

from wardcrf import authority, canonical, eventlog, features
from wardcrf.errors import Refused
from wardcrf.sync import bundle


@pytest.fixture
def store(tmp_path: Path) -> Any:
    features.install()
    s = ledgerkit.create(ledgerkit.where_for("sqlcipher", tmp_path, None), ledgerkit.hub_signer())
    try:
        yield s
    finally:
        s.close()


def _event(seq: int, typ: str, role: str | None, device: str = "lapa") -> eventlog.Event:
    body: dict[str, Any] = {"form": "infusion_x", "data": {}} if typ == "record.submitted" else {}
    f = _fields(device, seq, typ, "participant:WUH01-001", body, "u", role)  # type: ignore[arg-type]
    return eventlog.Event.from_line(canonical.event_line("0" * 64, f))


def test_a_second_role_on_a_type_already_passed_is_refused(store: Any) -> None:
    run = [_event(s, "record.submitted", "clinician") for s in range(1, 6)]
    authority.check_import(store, run, "ward", "b")  # accept
    run.append(_event(6, "record.submitted", "auditor"))
    with pytest.raises(
        Refused, match=r"^b: event lapa-6: role auditor may not originate record\.submitted \("
    ):
        authority.check_import(store, run, "ward", "b")


def test_a_second_type_by_a_role_already_passed_is_refused(store: Any) -> None:
    run = [_event(s, "record.submitted", "clinician") for s in range(1, 6)]
    run.append(_event(6, "user.added", "clinician"))
    with pytest.raises(Refused, match=r"^b: event lapa-6: role clinician may not originate user\.added \("):
        authority.check_import(store, run, "ward", "b")
    run[-1] = _event(6, "user.added", "admin")
    authority.check_import(store, run, "ward", "b")  # accept: admin may


def test_a_pass_in_one_run_does_not_carry_to_the_next(store: Any) -> None:
    run = [_event(s, "dsmg.decision", "dsmg", "hubx") for s in range(1, 4)]
    authority.check_import(store, run, "hub", "b")  # accept: the hub's own
    with pytest.raises(Refused, match=r"^b: event hubx-1 is a dsmg\.decision, which a ward device may not"):
        authority.check_import(store, run, "ward", "b")
