"""Preparation at the pharmacy (issue 17): a product's step declared `at = "pharmacy"` is recorded and
e-signed by the pharmacist, with the fields the protocol asks and the prepared product's use-by, and the
bedside administration's custody gate requires it instead of a thaw at the bedside.

On a PALM variant (`tests/palm_pharmacy.py`) whose ZMapp is thawed and diluted at the pharmacy (use-within
8 h; the dilution asks the volume, 50-500 mL, the diluent and an optional note of at most 40 characters);
MAb114 keeps its reconstitution at the bedside, as shipped. Every rule accepted and refused.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from palm_pharmacy import PHARMACY_ZMAPP, USE_WITHIN_S, VALUES, pharmacy_model, pharmacy_source
from site_users import PASSWORD

from wardcrf import projections, protocol, signatures
from wardcrf.coldchain import config, custody, scenario, services
from wardcrf.engine import loading, model
from wardcrf.errors import AuthError, PermissionDenied, Refused, UsageError, ValidationFailed

SIGNERS = {u: PASSWORD for u in ("pharmacist", "investigator", "clinician", "coordinator")}
ZONE = ZoneInfo("Asia/Shanghai")
ARRIVE = datetime(2020, 3, 15, 8, 0, tzinfo=ZONE)
DOSE = datetime(2020, 3, 16, 9, 0, tzinfo=ZONE)
START = datetime(2020, 3, 16, 7, 30)  # site-local wall times of a preparation before the dose
END = datetime(2020, 3, 16, 8, 0)
LOGGED = datetime(2020, 3, 16, 8, 30, tzinfo=ZONE)  # the units' logs downloaded up to here


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="minutes")


@pytest.fixture
def ph(admin, session_for):
    loading.load(admin, pharmacy_model())
    return session_for("pharmacist")


def stored(ph, tmp_path: Path, kit: str = "Z1", product: str = "ZMAPP") -> str:
    """`kit` received and stored in its product's unit the day before, the unit's log downloaded to 08:30."""
    scenario.receive_and_store(
        ph, SIGNERS, lot=f"LOT-{kit}", kits=[kit], received_at=ARRIVE, workdir=tmp_path, product=product
    )
    unit = scenario.unit_for(config.products(ph.store)[product])[0]
    scenario.download_freezer_log(ph, LOGGED, since=ARRIVE, workdir=tmp_path, unit=unit)
    return unit


def prepare(session, kit: str = "Z1", values: dict | None = None, **kw):
    return services.record_preparation(
        session,
        kit,
        start=kw.pop("start", iso(START)),
        end=kw.pop("end", iso(END)),
        values=VALUES if values is None else values,
        password=kw.pop("password", PASSWORD),
        **kw,
    )


def preparations(store) -> list[dict]:
    return store.rows("SELECT * FROM cc_preparations ORDER BY event_id")


def to_bedside(ph, kit: str, unit: str, at: datetime = datetime(2020, 3, 16, 8, 15)) -> None:
    services.record_handover(
        ph,
        kits=[kit],
        at=iso(at),
        from_location=unit,
        to_location="bedside:PALM-001",
        from_user="pharmacist",
        to_user="clinician",
        passwords=SIGNERS,
    )


# -- the protocol ---------------------------------------------------------------------------------


def test_steps_at_the_pharmacy_are_read_from_the_protocol(ph) -> None:
    found = config.products(ph.store)
    zmapp = found["ZMAPP"]
    assert [(s.code, s.at) for s in zmapp.pharmacy_steps] == [("thaw", "pharmacy"), ("dilute", "pharmacy")]
    assert zmapp.bedside_steps == () and zmapp.use_within_s == USE_WITHIN_S
    form = services.preparation_form(zmapp)
    assert list(form.fields) == ["volume_ml", "diluent", "note"]
    assert form.fields["volume_ml"].hard == (50.0, 500.0) and form.fields["volume_ml"].unit == "mL"
    assert form.fields["diluent"].required and not form.fields["note"].required
    mab = found["MAB114"]  # as shipped: at the bedside
    assert [s.code for s in mab.bedside_steps] == ["reconstitute"] and mab.pharmacy_steps == ()
    assert [(f.product, f.field.name) for f in services.preparation_fields(ph)] == [
        ("ZMAPP", "volume_ml"),
        ("ZMAPP", "diluent"),
        ("ZMAPP", "note"),
    ]


def _refused(source: str) -> str:
    with pytest.raises(protocol.ProtocolFileError) as got:
        model.parse(source, "palm-bad.toml")
    return "\n".join(got.value.problems)


def test_fields_on_a_bedside_step_are_refused_at_load() -> None:
    bedside = PHARMACY_ZMAPP.replace('at = "pharmacy"\nwithin = "8h"', 'at = "bedside"\nwithin = "8h"')
    words = _refused(pharmacy_source(bedside))
    assert "palm-bad.toml:" in words
    assert 'fields are recorded with a preparation at the pharmacy (at = "pharmacy")' in words


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("hard = [50, 500]", "hard = [500, 50]", "the range's low end 500 is above its high end"),
        ('type = "number"\nunit = "mL"', 'type = "text"\nunit = "mL"', "units apply to number and integer"),
        ('type = "choice"', 'type = "date"', "is not allowed"),
        ("required = false\nmax_length = 40", "required = false\nmax_length = 0", "max_length"),
        (
            '[products.preparation.fields.diluent]\ntype = "choice"',
            '[products.preparation.fields.Bad]\ntype = "choice"',
            "Bad",
        ),
        ('label = "Diluent"\n', 'label = "Diluent"\nwhen = "x"\n', "unknown key 'when'"),
    ],
)
def test_malformed_preparation_fields_are_refused_at_load(old: str, new: str, words: str) -> None:
    assert PHARMACY_ZMAPP.count(old) == 1, old
    got = _refused(pharmacy_source(PHARMACY_ZMAPP.replace(old, new)))
    assert words in got and "palm-bad.toml:" in got


def test_a_step_at_the_pharmacy_needs_a_product_in_the_cold_chain() -> None:
    source = pharmacy_source().replace(
        "storage = { min_c = -25, max_c = -15, target_c = -20 }   # [U] supplied frozen; range not verified\n",
        "",
        1,
    )
    assert source != pharmacy_source()
    assert "product ZMAPP needs storage = { min_c, max_c }" in _refused(source)


# -- recording it ---------------------------------------------------------------------------------


def test_a_pharmacist_records_and_signs_a_preparation(ph, tmp_path) -> None:
    stored(ph, tmp_path)
    rec = prepare(ph, "z1", values={**VALUES, "note": "bag 1 of 1"})  # the kit as scanned, any case
    [row] = preparations(ph.store)
    assert (row["kit_id"], row["product"], row["by_user"]) == ("Z1", "ZMAPP", "pharmacist")
    assert json.loads(row["steps"]) == ["thaw", "dilute"]
    assert json.loads(row["field_values"]) == {
        "volume_ml": {"value": 250.0, "unit": "mL"},
        "diluent": "saline",
        "note": "bag 1 of 1",
    }
    assert row["use_by_t"] - row["end_t"] == USE_WITHIN_S
    assert rec.event.body["data"]["use_by"] == "2020-03-16T08:00:00Z"  # 08:00 local + 8 h, in UTC
    [sig] = signatures.for_target(ph.store, rec.event.id)
    assert (sig.user, sig.meaning, sig.valid) == ("pharmacist", "authored", True)
    link = custody.chain(ph.store, "Z1").links[-1]
    assert link.kind == "preparation" and link.detail["use_by"] == "2020-03-16T08:00:00Z"
    _, differences = projections.check(ph.store)
    assert differences == []


def test_a_dry_run_checks_everything_and_keeps_nothing(ph, tmp_path) -> None:
    stored(ph, tmp_path)
    before = ph.store.scalar("SELECT count(*) FROM events")
    rec = prepare(ph, password=None, dry_run=True)
    assert rec.event.body["data"]["kit_id"] == "Z1"
    assert ph.store.scalar("SELECT count(*) FROM events") == before and preparations(ph.store) == []
    with pytest.raises(ValidationFailed):
        prepare(ph, values={"volume_ml": "5000", "diluent": "saline"}, password=None, dry_run=True)


@pytest.mark.parametrize("role", ["clinician", "investigator", "admin", "auditor"])
def test_only_a_pharmacist_may_record_a_preparation(ph, tmp_path, session_for, role) -> None:
    stored(ph, tmp_path)
    with pytest.raises(
        PermissionDenied,
        match=rf"role {role} may not record a preparation at the pharmacy \(allowed: pharmacist\)",
    ):
        prepare(session_for(role))
    assert preparations(ph.store) == []


def test_an_unknown_kit_is_refused(ph, tmp_path) -> None:
    stored(ph, tmp_path)
    with pytest.raises(Refused, match="kit Z9 is not registered"):
        prepare(ph, "Z9")
    assert preparations(ph.store) == []


def test_a_kit_already_prepared_is_refused(ph, tmp_path) -> None:
    stored(ph, tmp_path)
    first = prepare(ph)
    with pytest.raises(
        Refused, match=rf"kit Z1 was already prepared at the pharmacy \({first.event.id}, by pharmacist"
    ):
        prepare(ph, start=iso(END), end=iso(END + timedelta(minutes=20)))
    assert len(preparations(ph.store)) == 1


def test_a_product_prepared_at_the_bedside_is_not_prepared_here(ph, tmp_path) -> None:
    stored(ph, tmp_path, "M1", "MAB114")
    with pytest.raises(Refused, match=r"kit M1 is MAB114 .*which the protocol prepares at the bedside"):
        prepare(ph, "M1", values={})
    assert preparations(ph.store) == []


def test_a_kit_at_the_bedside_or_not_received_is_refused(ph, tmp_path) -> None:
    unit = stored(ph, tmp_path)
    services.add_lot(
        ph, "LZ2", product="ZMAPP", expiry="2021-06-30", release_ref="QP", kits=["Z2"], quantity=1
    )
    with pytest.raises(Refused, match="kit Z2 has no custody step before"):
        prepare(ph, "Z2")
    to_bedside(ph, "Z1", unit, datetime(2020, 3, 16, 7, 45))
    with pytest.raises(  # it went to the bedside before the preparation ended
        Refused,
        match=r"kit Z1 is at 'bedside:PALM-001' at 2020-03-15T23:50:00Z: ZMAPP is prepared at the pharmacy",
    ):
        prepare(ph, start=iso(datetime(2020, 3, 16, 7, 0)), end=iso(datetime(2020, 3, 16, 7, 50)))
    with pytest.raises(
        Refused,
        match=r"kit Z1 is at 'bedside:PALM-001' .*prepared at the pharmacy, before the kit goes to the bedside",
    ):
        prepare(ph)
    assert preparations(ph.store) == []


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"volume_ml": "5000", "diluent": "saline"}, "volume_ml", "5000 mL is outside the allowed range 50"),
        ({"volume_ml": "a lot", "diluent": "saline"}, "volume_ml", "'a lot' is not a number"),
        ({"volume_ml": "250"}, "diluent", "required"),
        ({"volume_ml": "250", "diluent": "water"}, "diluent", "is not one of: saline, d5w"),
        ({**VALUES, "flow_rate": "10"}, "flow_rate", "unknown field"),
        ({**VALUES, "note": "x" * 41}, "note", "too long"),
        ({**VALUES, "note": "bag\x1b[31m1"}, "note", "is not allowed"),
        ({**VALUES, "note": "bag\x001"}, "note", "is not allowed"),
    ],
)
def test_a_field_out_of_its_declaration_is_refused(ph, tmp_path, values, field, words) -> None:
    stored(ph, tmp_path)
    with pytest.raises(ValidationFailed) as got:
        prepare(ph, values=values)
    assert field in got.value.problems and words in got.value.problems[field], got.value.problems
    assert preparations(ph.store) == []


def test_times_and_the_password_are_checked(ph, tmp_path) -> None:
    stored(ph, tmp_path)
    with pytest.raises(UsageError, match="the preparation's end must be after its start"):
        prepare(ph, start=iso(END), end=iso(START))
    with pytest.raises(Refused, match="is in the future"):
        prepare(
            ph, start=iso(datetime.now() + timedelta(days=2)), end=iso(datetime.now() + timedelta(days=3))
        )
    with pytest.raises(UsageError, match="the pharmacist signs the preparation: give your password"):
        prepare(ph, password="")
    with pytest.raises(AuthError):
        prepare(ph, password="not the password")
    assert preparations(ph.store) == []
    assert ph.store.one("SELECT 1 FROM records WHERE form = 'coldchain.preparation'") is None


def test_a_preparation_recorded_after_its_use_by_is_saved_with_a_warning(ph, tmp_path) -> None:
    stored(ph, tmp_path)
    rec = prepare(ph)  # 2020: its 8 h have long passed
    assert any("use-within (480 min) passed at 2020-03-16T08:00:00Z" in w for w in rec.warnings)
    assert len(preparations(ph.store)) == 1


# -- the bedside administration requires it -------------------------------------------------------


def test_the_administration_needs_the_preparation_and_no_bedside_thaw(ph, tmp_path) -> None:
    scenario.ready_kit(ph, SIGNERS, "Z1", DOSE, workdir=tmp_path, product="ZMAPP")
    assert len(preparations(ph.store)) == 1
    assert ph.store.one("SELECT 1 FROM cc_thaws") is None  # nothing asked at the bedside
    custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")
    assert custody.chain(ph.store, "Z1").complete
    with pytest.raises(Refused, match=r"which the protocol prepares at the pharmacy \(thaw, dilute\)"):
        services.record_thaw(
            ph, "Z1", start=iso(datetime(2020, 3, 16, 8, 20)), end=iso(datetime(2020, 3, 16, 8, 30))
        )


def test_an_administration_before_the_preparation_is_refused_naming_the_kit(ph, tmp_path) -> None:
    unit = stored(ph, tmp_path)
    to_bedside(ph, "Z1", unit)
    with pytest.raises(
        Refused,
        match=r"custody gate: kit Z1 has no preparation at the pharmacy before 2020-03-16T01:00:00Z: ZMAPP step "
        r"'thaw' \(Thaw the vials\), 'dilute' \(Dilute in normal saline for infusion\) is prepared and signed by "
        r"the pharmacist first \(`wardcrf coldchain prepare Z1`\)",
    ):
        custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")


def test_the_protocols_custody_gate_refuses_an_unprepared_kit(ph, tmp_path) -> None:
    """The engine's `custody` gate before an administration (what the wizard's kit step asks) says it too."""
    from dataclasses import fields

    from wardcrf.workflow.base import Participant
    from wardcrf.workflow.gatefacts import site_facts

    unit = stored(ph, tmp_path)
    to_bedside(ph, "Z1", unit)
    nobody = Participant(**{f.name: None for f in fields(Participant)})
    facts = site_facts(ph.store, protocol.active(ph.store), nobody)
    assert facts.custody is not None
    (gate,) = [g for g in protocol.active(ph.store).engine.data["gates"] if g["kind"] == "custody"]
    adm = {"kit": "Z1", "start": DOSE, "product": "ZMAPP", "kit_first_use": True}
    said = facts.custody({"gate": gate, "administration": adm})
    assert said is not None and "kit Z1 has no preparation at the pharmacy" in said


def test_a_preparation_ending_after_the_dose_time_does_not_count(ph, tmp_path) -> None:
    """A handover to the bedside recorded afterwards inside the preparation's span: at a dose before the
    preparation ended there was no prepared product yet."""
    unit = stored(ph, tmp_path)
    prepare(ph, end=iso(datetime(2020, 3, 16, 8, 30)))
    to_bedside(ph, "Z1", unit)  # 08:15
    custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")
    early = datetime(2020, 3, 16, 8, 20, tzinfo=ZONE)
    with pytest.raises(
        Refused, match="kit Z1 has no preparation at the pharmacy before 2020-03-16T00:20:00Z"
    ):
        custody.check_dose(ph.store, "Z1", early, product="ZMAPP")


def test_an_administration_after_the_use_within_is_refused(ph, tmp_path) -> None:
    unit = stored(ph, tmp_path)
    prepare(ph)
    to_bedside(ph, "Z1", unit, datetime(2020, 3, 16, 14, 0))
    custody.check_dose(ph.store, "Z1", datetime(2020, 3, 16, 15, 59, tzinfo=ZONE), product="ZMAPP")
    with pytest.raises(
        Refused,
        match=r"kit Z1 was prepared at the pharmacy at 2020-03-16T00:00:00Z \(.*\): its use-within \(480 min\) "
        r"passed at 2020-03-16T08:00:00Z, before 2020-03-16T08:01:00Z",
    ):
        custody.check_dose(ph.store, "Z1", datetime(2020, 3, 16, 16, 1, tzinfo=ZONE), product="ZMAPP")


def test_a_bedside_step_still_works_as_before(ph, tmp_path) -> None:
    scenario.ready_kit(ph, SIGNERS, "M1", DOSE, workdir=tmp_path, product="MAB114")
    assert preparations(ph.store) == [] and ph.store.one("SELECT 1 FROM cc_thaws WHERE kit_id = 'M1'")
    custody.check_dose(ph.store, "M1", DOSE, product="MAB114")


# -- the command line -----------------------------------------------------------------------------


def test_cli_prepare_is_signed_and_shown_in_the_custody(ph, tmp_path, cli) -> None:
    stored(ph, tmp_path)
    r = cli(
        "coldchain", "prepare", "Z1", "--start", iso(START), "--end", iso(END),
        "--set", "volume_ml=250", "--set", "diluent=saline", user="pharmacist",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "Recorded preparation of Z1 (ZMAPP: thaw, dilute) at the pharmacy, signed by pharmacist" in r.out
    assert "use by 2020-03-16T08:00:00Z" in r.out
    r = cli("coldchain", "custody", "Z1", user="auditor")
    assert (
        "prepared at the pharmacy by pharmacist (thaw, dilute; diluent=saline, volume_ml=250.0 mL)" in r.out
    )


@pytest.mark.parametrize(
    ("args", "user", "code", "words"),
    [
        (
            ["--set", "volume_ml=250", "--set", "diluent=saline"],
            "clinician",
            1,
            "role clinician may not record a preparation",
        ),
        (["--set", "volume_ml"], "pharmacist", 2, "'volume_ml' is not field=value"),
        (["--set", "volume_ml=1", "--set", "volume_ml=2"], "pharmacist", 2, "field volume_ml is given twice"),
        (["--set", "volume_ml=9999", "--set", "diluent=saline"], "pharmacist", 1, "volume_ml"),
    ],
)
def test_cli_prepare_refusals_are_one_line_and_save_nothing(
    ph, tmp_path, cli, args, user, code, words
) -> None:
    stored(ph, tmp_path)
    r = cli("coldchain", "prepare", "Z1", "--start", iso(START), "--end", iso(END), *args, user=user)
    assert r.code == code, (r.out, r.err)
    assert words in r.err and "Traceback" not in r.err
    assert preparations(ph.store) == []


def test_the_custody_record_shows_the_preparation_and_its_signature(ph, tmp_path, cli) -> None:
    scenario.ready_kit(ph, SIGNERS, "Z1", DOSE, workdir=tmp_path, product="ZMAPP")
    out = tmp_path / "z1.json"
    r = cli("report", "audit", "--kit", "Z1", "--out", str(out), user="auditor")
    assert r.code == 0, r.err
    kit = json.loads(out.read_text())
    assert kit["kit"] == "Z1"
    (prep,) = kit["preparations"]
    assert (prep["product"], prep["steps"], prep["by"]) == ("ZMAPP", ["thaw", "dilute"], "pharmacist")
    assert prep["values"]["diluent"] == "saline" and prep["use_by"]["utc"]
    assert any("authored" in s and "CHANGED" not in s for s in prep["signed"])
    assert kit["thaws"] == []
    pdf = tmp_path / "z1.pdf"
    r = cli("report", "audit", "--kit", "Z1", "--out", str(pdf), user="auditor")
    assert r.code == 0, r.err
    assert pdf.read_bytes().startswith(b"%PDF")


def test_a_prepared_kit_waits_on_its_use_by_not_the_transit_allowance(ph, tmp_path) -> None:
    """Prepared, then carried to the pharmacy bench: its clock is the use-by (8 h), not 30 min in transit."""
    from wardcrf.coldchain import gate

    unit = stored(ph, tmp_path)
    prepare(ph)
    moved = services.record_handover(
        ph,
        kits=["Z1"],
        at=iso(datetime(2020, 3, 16, 8, 5)),
        from_location=unit,
        to_location="pharmacy",
        from_user="pharmacist",
        to_user="investigator",
        passwords=SIGNERS,
    )
    assert moved.warnings == [
        "1 kit(s) (Z1) at 'pharmacy', prepared at the pharmacy: give them by 2020-03-16 16:00 +08:00 "
        "(the preparation's use-within)"
    ]
    at = datetime(2020, 3, 16, 9, 0, tzinfo=ZONE)
    [clock] = custody.outside_units(ph.store, int(at.timestamp()))
    assert (clock.kit, clock.location, clock.prepared) == ("Z1", "pharmacy", True)
    assert clock.deadline == int(datetime(2020, 3, 16, 16, 0, tzinfo=ZONE).timestamp()) and not clock.over
    [item] = gate.kits_on_the_clock(ph.store, at)
    assert item["what"].startswith("give prepared kit(s) Z1 from pharmacy by 2020-03-16 16:00")
    assert item["state"] == "due now"


def _at(h: int, m: int = 0) -> int:
    return int(datetime(2020, 3, 16, h, m, tzinfo=ZONE).timestamp())


def test_a_prepared_kit_handed_to_the_bedside_late_is_told_its_use_by_not_the_bedside_allowance(
    ph, tmp_path
) -> None:
    """At 15:00 the bedside's 120 min would run to 17:00, but the dilution's use-by is 16:00: the handover
    says 16:00 and why, as the kit's clock does."""
    unit = stored(ph, tmp_path)
    prepare(ph)
    moved = services.record_handover(
        ph,
        kits=["Z1"],
        at=iso(datetime(2020, 3, 16, 15, 0)),
        from_location=unit,
        to_location="bedside:PALM-001",
        from_user="pharmacist",
        to_user="clinician",
        passwords=SIGNERS,
    )
    # recorded years later (the test's clock is today's): the use-by has passed, in those words
    assert (
        "1 kit(s) (Z1) at bedside:PALM-001: the preparation's use-by passed at 2020-03-16 16:00 +08:00; "
        "they can no longer be dosed"
    ) in moved.warnings
    # recorded as it happens, at 15:10
    assert custody.clock_warning(ph.store, ["Z1"], "bedside:PALM-001", _at(15), _at(15, 10)) == (
        "1 kit(s) (Z1) at bedside:PALM-001: dose by 2020-03-16 16:00 +08:00 (50 min left; the preparation's "
        "use-by comes before the 120 min at the bedside end), or they can no longer be dosed"
    )
    [clock] = custody.outside_units(ph.store, _at(15, 10))
    assert clock.deadline == _at(16)


def test_a_prepared_kit_handed_to_the_bedside_early_keeps_the_bedside_allowance(ph, tmp_path) -> None:
    """At 08:15 the bedside's 120 min end at 10:15, before the 16:00 use-by: the allowance is what to meet."""
    unit = stored(ph, tmp_path)
    prepare(ph)
    to_bedside(ph, "Z1", unit)
    assert custody.clock_warning(ph.store, ["Z1"], "bedside:PALM-001", _at(8, 15), _at(8, 20)) == (
        "1 kit(s) (Z1) at bedside:PALM-001: dose by 2020-03-16 10:15 +08:00 (115 min left of the 120 min at "
        "the bedside), or they can no longer be dosed"
    )
    [clock] = custody.outside_units(ph.store, _at(8, 20))
    assert clock.deadline == _at(10, 15)
