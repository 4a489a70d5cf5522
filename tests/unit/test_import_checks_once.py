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
from wardcrf.sync import bundle

from wardcrf import authority, canonical, eventbodies, eventlog, features
from wardcrf.errors import Refused
from wardcrf.sqlstore import common_dialect


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


# -- the envelope's per-device keys, once per combination in a bundle -------------------------------


def _obj(n: int, **changed: Any) -> dict[str, Any]:
    seq = n
    f = _fields(
        "lapa",
        seq,
        "record.submitted",
        "participant:WUH01-001",
        {"form": "vitals", "data": {}},
        "u",
        "clinician",
    )
    f.update(changed)
    return {"prev": "0" * 64, **f}


BAD_PER_DEVICE = {
    "device": "lapa!",
    "role": "wizard",
    "site": "W" * 300,
    "type": "t" * 101,
    "tz": "+8:00",
    "user": 7,
    "zone": "Mars/Olympus",
}
GOOD_PER_DEVICE = {
    "device": "lapb",
    "role": "investigator",
    "site": "WUH02",
    "type": "signature.applied",
    "tz": "+01:00",
    "user": "v",
    "zone": "Europe/Paris",
}
BAD_REST = {
    "hlc": "1790000000001.0",
    "ts": "yesterday",
    "body": [1],
    "seq": 0,
    "amends": "not an id",
    "protocol": {"id": ["x"]},
    "reason": 5,
    "subject": None,  # valid: a null subject
    "id": "lapa-999",
}


@pytest.mark.parametrize("key", sorted(BAD_PER_DEVICE))
def test_a_line_differing_in_one_per_device_key_is_checked_whole(key: str) -> None:
    check = eventbodies.envelope_checker()
    assert [check(_obj(s)) for s in range(1, 4)] == [None, None, None]
    bad = _obj(4, **{key: BAD_PER_DEVICE[key]})
    assert check(bad) == eventbodies.check_envelope(bad) is not None
    good = _obj(5, **{key: GOOD_PER_DEVICE[key]})
    if key == "device":
        good["id"] = "lapb-5"
    assert check(good) is eventbodies.check_envelope(good) is None
    assert check(_obj(6)) is None  # the first combination still passes


@pytest.mark.parametrize("key", sorted(BAD_REST))
def test_a_line_of_a_known_combination_is_still_checked_in_the_rest_and_refused_in_the_whole_checks_words(
    key: str,
) -> None:
    check = eventbodies.envelope_checker()
    assert check(_obj(1)) is None
    line = _obj(2, **{key: BAD_REST[key]})
    assert check(line) == eventbodies.check_envelope(line)
    assert (check(line) is None) == (key == "subject")
    # a missing key, whatever the combination: the whole check's words
    gone = _obj(3)
    del gone[key]
    assert check(gone) == eventbodies.check_envelope(gone) is not None


def test_the_chain_check_refuses_a_bad_zone_deep_in_a_bundle_in_its_words() -> None:
    lines, prev = [], canonical.GENESIS
    for seq in range(1, 9):
        o = _obj(seq)
        del o["prev"]
        if seq == 6:
            o["zone"] = "Mars/Olympus"
        lines.append(canonical.event_line(prev, o))
        prev = canonical.line_hash(lines[-1])
    m = {
        "device": "lapa",
        "site": "WUH01",
        "chain_first_prev": canonical.GENESIS,
        "chain_last": prev,
        "events": {"count": 8, "first": 1, "last": 8},
    }
    assert (
        len(
            bundle.check_chain(
                lines[:5],
                {
                    **m,
                    "chain_last": canonical.line_hash(lines[4]),
                    "events": {"count": 5, "first": 1, "last": 5},
                },
                "b",
            )
        )
        == 5
    )
    with pytest.raises(Refused) as exc:
        bundle.check_chain(lines, m, "b")
    assert (
        str(exc.value) == "b: event line 6 (record.submitted): zone 'Mars/Olympus' is not a known time zone"
    )


# -- a record's form read once for its role and its values -----------------------------------------


def test_an_amendments_role_and_values_are_checked_under_the_held_records_form(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The amendment claims `infusion_x` in its body; the record it corrects is a `dsmg_x` record: the
    role check and the values check both see `dsmg_x` (the form read once, for both)."""
    with store.transaction():
        store.execute(
            "INSERT INTO records (event_id, form, subject, data, field_hlc, created_at, last_event, last_hlc)"
            " VALUES ('lapz-1', 'dsmg_x', 'participant:WUH01-001', '{}', '{}', 't', 'lapz-1', 'h')"
        )
    seen: list[tuple[str, str]] = []

    @common_dialect
    def actions(st: Any, e: eventlog.Event, form: str, arriving: Any) -> tuple[str, str] | None:
        seen.append(("actions", form))
        return ("dsmg.decide", "dsmg.decide") if form == "dsmg_x" else None

    @common_dialect
    def values(st: Any, e: eventlog.Event, form: str, arriving: Any) -> str | None:
        seen.append(("values", form))
        return None

    monkeypatch.setattr(authority, "_FORM_ACTIONS_OF", [actions])
    monkeypatch.setattr(authority, "_RECORD_VALUES", [values])
    f = _fields(
        "lapa", 1, "record.amended", "participant:WUH01-001", {"form": "infusion_x", "data": {}}, "u", "dsmg"
    )
    f["amends"] = "lapz-1"
    amendment = eventlog.Event.from_line(canonical.event_line("0" * 64, f))
    authority.check_import(store, [amendment], "ward", "b")  # accept: the DSMG may amend its own form
    assert seen == [("actions", "dsmg_x"), ("values", "dsmg_x")]
    seen.clear()
    f["role"] = "clinician"
    by_clinician = eventlog.Event.from_line(canonical.event_line("0" * 64, f))
    with pytest.raises(Refused, match=r"event lapa-1: role clinician may not amend 'dsmg_x' records"):
        authority.check_import(store, [by_clinician], "ward", "b")
    assert seen == [("actions", "dsmg_x")]  # refused before its values are asked
