"""Who may say what: a signed ward bundle may carry only what its device may originate.

Issue 15, finding 1. The attack: a key holder on a real ward laptop writes
events of the hub's own types into the laptop's chain (`forge.append_raw`);
the ordinary export signs them. The hub must refuse such a bundle whole,
naming the event, and apply nothing; the genuine devices carry on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from forge import append_raw
from hub_engines import ledger
from synckit import PASSWORD, add_notes, card_of, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, registry, ward

from wardcrf import eventlog, users
from wardcrf.errors import Refused
from wardcrf.site import Site


def export(w: Site, to: Path) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to).files
    finally:
        s.close()


def hub_import(h: Site, path: Path) -> hub.ImportResult:
    s = open_(h)
    try:
        return hub.import_file(s, path)
    finally:
        s.close()


def device_of(site: Site) -> str:
    s = open_(site)
    try:
        return s.ctx.device
    finally:
        s.close()


@pytest.fixture
def trial(tmp_path: Path, hub_engine: str) -> dict[str, Any]:
    """A hub, a ward of WUH01 and a ward of XYZ02, each ward's first bundle applied (each test using it
    runs at a SQLCipher and at a PostgreSQL hub: `hub_engine`)."""
    h = make_hub(tmp_path)
    w1 = make_ward(tmp_path, "lap1", "WUH01")
    w2 = make_ward(tmp_path, "lap2", "XYZ02")
    connect(w1, h)
    connect(w2, h)
    for w, n in ((w1, "a"), (w2, "b")):
        add_notes(w, 2)
        for f in export(w, tmp_path / f"first-{n}"):
            assert hub_import(h, f).outcome.status == "applied"
    return {"hub": h, "w1": w1, "w2": w2, "root": tmp_path}


def hub_rows(h: Site, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows where the hub keeps what its wards send (`hub.ledger_store`: its file, or its database)."""
    with ledger(h) as (_s, store):
        return store.rows(sql, params)


def attacker_card(root: Path) -> dict[str, Any]:
    """A card for a device the attacker controls, claiming site XYZ02."""
    rogue = make_ward(root, "rogue", "XYZ02")
    return card_of(rogue).as_dict()


@pytest.mark.pg_gap(
    "a ward bundle forging hub.device_registered is refused as 'needs projections ... does not run yet'"
    " (sync.engine.check_portable runs before authority.check_import), not as one its device 'may not' send"
)
def test_attack_forged_registration_and_decision_are_refused_and_nothing_applied(trial) -> None:
    """The attack as found: a ward bundle continuing lap1's chain replaces XYZ02's laptop by
    the attacker's key and sends XYZ02 a 'stop enrolment' decision."""
    h, w1, w2, root = trial["hub"], trial["w1"], trial["w2"], trial["root"]
    lap2 = device_of(w2)
    card = attacker_card(root)
    before = hub_rows(h, "SELECT count(*) AS n FROM events")[0]["n"]
    add_notes(w1, 1)  # a genuine event first: the bundle is all or nothing
    append_raw(w1, "hub.device_registered", {**card, "replaces": lap2}, subject=f"device:{card['device']}")
    append_raw(
        w1,
        "dsmg.decision",
        {"site": "XYZ02", "decision": "stop enrolment", "detail": "forged"},
        subject="site:XYZ02",
        user="admin",
        role="admin",
    )
    files = export(w1, root / "attack")
    with pytest.raises(Refused) as refused:
        for f in files:
            hub_import(h, f)
    msg = str(refused.value)
    assert "hub.device_registered" in msg and "may not" in msg, msg
    # Nothing of the bundle was applied; the genuine laptop stays active, no decision.
    assert (
        hub_rows(h, "SELECT count(*) AS n FROM events WHERE type != 'sync.bundle_refused'")[0]["n"] == before
    )
    assert hub_rows(h, "SELECT status FROM sync_devices WHERE device = ?", (lap2,))[0]["status"] == "active"
    assert hub_rows(h, "SELECT * FROM sync_devices WHERE device = ?", (card["device"],)) == []
    assert hub_rows(h, "SELECT * FROM sync_decisions") == []
    # The genuine laptop's next bundle is still accepted.
    add_notes(w2, 1)
    out = [hub_import(h, f).outcome.status for f in export(w2, root / "next-b")]
    assert out[-1] == "applied"


HUB_ONLY: list[tuple[str, dict[str, Any], str | None]] = [
    ("hub.device_registered", {}, None),  # body filled in by the test (a real card)
    ("hub.device_retired", {"device": "LAP2"}, None),
    ("dsmg.decision", {"site": "XYZ02", "decision": "pause", "detail": "x"}, "site:XYZ02"),
    ("dsmg.decision", {"site": "WUH01", "decision": "continue", "detail": "own site"}, "site:WUH01"),
    ("query.raised", {"site": "WUH01", "target_event": "EV-1", "field": "f", "question": "q"}, "site:WUH01"),
    ("query.closed", {"query": "QUERY", "note": "closed by a ward"}, None),
    ("hub.user_change", {"site": "XYZ02", "username": "admin", "action": "deactivate"}, "user:admin"),
    (
        "sync.fork_detected",
        {
            "device": "LAP2",
            "site": "XYZ02",
            "bundle_seq": 1,
            "held_manifest": "x",
            "applied_manifest": "y",
            "events": {"first": 1, "last": 1, "count": 1},
            "detail": "forged",
        },
        None,
    ),
    (
        "sync.bundle_held",
        {
            "device": "LAP2",
            "site": "XYZ02",
            "bundle_seq": 1,
            "held_manifest": "x",
            "reason": "clash",
            "detail": "forged",
        },
        None,
    ),
]


@pytest.mark.parametrize(
    ("etype", "body", "subject"), HUB_ONLY, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(HUB_ONLY)]
)
def test_every_hub_only_type_in_a_ward_bundle_is_refused(
    trial, etype: str, body: dict[str, Any], subject: str | None
) -> None:
    h, w1, w2, root = trial["hub"], trial["w1"], trial["w2"], trial["root"]
    lap2 = device_of(w2)
    body = {k: (lap2 if v == "LAP2" else v) for k, v in body.items()}
    if etype == "hub.device_registered":
        body = {**attacker_card(root), "replaces": lap2}
    if etype == "query.closed":
        # A coordinator's open query on one of lap1's own records.
        target = hub_rows(
            h, "SELECT id FROM events WHERE device = ? ORDER BY seq DESC LIMIT 1", (device_of(w1),)
        )[0]["id"]
        with ledger(h, "coordinator") as (c, wards):
            q = registry.raise_query(c, "WUH01", target, "text", "which note?", wards=wards)
        body["query"] = q.id
    before = hub_rows(h, "SELECT count(*) AS n FROM events")[0]["n"]
    append_raw(w1, etype, body, subject=subject)
    with pytest.raises(Refused, match=etype.replace(".", r"\.")):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert (
        hub_rows(h, "SELECT count(*) AS n FROM events WHERE type != 'sync.bundle_refused'")[0]["n"] == before
    )
    assert hub_rows(h, "SELECT status FROM sync_devices WHERE device = ?", (lap2,))[0]["status"] == "active"
    assert hub_rows(h, "SELECT * FROM sync_decisions") == []
    assert all(q["status"] == "open" for q in hub_rows(h, "SELECT status FROM sync_queries"))


def test_ward_answer_to_another_sites_query_is_refused(trial) -> None:
    """query.answered is a ward's to send, but only for a query raised to its own site."""
    h, w1, w2, root = trial["hub"], trial["w1"], trial["w2"], trial["root"]
    target = hub_rows(
        h, "SELECT id FROM events WHERE device = ? ORDER BY seq DESC LIMIT 1", (device_of(w2),)
    )[0]["id"]
    with ledger(h, "coordinator") as (c, wards):
        q = registry.raise_query(c, "XYZ02", target, "text", "which note?", wards=wards)
    append_raw(
        w1,
        "query.answered",
        {"query": q.id, "answer": "forged", "amendment": None},
        subject="site:XYZ02",
        user="admin",
        role="coordinator",
    )
    with pytest.raises(Refused, match=r"query\.answered"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT status FROM sync_queries WHERE query_id = ?", (q.id,))[0]["status"] == "open"


def test_ward_amending_another_sites_record_is_refused(trial) -> None:
    from wardcrf.coldchain import services

    h, w1, w2, root = trial["hub"], trial["w1"], trial["w2"], trial["root"]
    s = open_(w2)
    try:
        target = services.add_unit(s, "FRZ-9", name="freezer", location="pharmacy").id
    finally:
        s.close()
    for f in export(w2, root / "unit"):
        assert hub_import(h, f).outcome.ok
    append_raw(
        w1,
        "record.amended",
        {"form": "coldchain.unit", "changes": {"name": {"old": "freezer", "new": "x"}}},
        subject="unit:FRZ-9",
        amends=target,
        reason="forged",
        role="pharmacist",
    )
    with pytest.raises(Refused, match=r"record\.amended"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT count(*) AS n FROM amendments")[0]["n"] == 0


def test_ward_verifying_another_sites_record_is_refused(trial) -> None:
    """A ward's monitor marks only its own site's records; the hub's monitors any site's (test_sdv)."""
    h, w1, w2, root = trial["hub"], trial["w1"], trial["w2"], trial["root"]
    from wardcrf.coldchain import services

    s = open_(w2)
    try:
        target = services.add_unit(s, "FRZ-8", name="freezer", location="pharmacy").id
    finally:
        s.close()
    for f in export(w2, root / "unit8"):
        assert hub_import(h, f).outcome.ok
    append_raw(
        w1,
        "sdv.verified",
        {
            "target": target,
            "form": "coldchain.unit",
            "scope": "record",
            "fields": ["name"],
            "values": {"name": "0" * 64},
            "sources": [],
            "meaning": "verified",
            "signer": "forger",
            "full_name": "Forger",
        },
        subject="unit:FRZ-8",
        role="monitor",
    )
    with pytest.raises(Refused, match=r"sdv\.verified\) verifies record"):
        for f in export(w1, root / "forged-sdv"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT count(*) AS n FROM sdv_marks")[0]["n"] == 0


def test_ward_record_about_another_sites_participant_is_refused(trial) -> None:
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    append_raw(
        w1,
        "record.submitted",
        {"form": "vitals", "data": {}},
        subject="participant:XYZ02-001",
        role="clinician",
        user="admin",
    )
    with pytest.raises(Refused, match=r"participant XYZ02-001"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)


def test_record_by_a_role_that_may_not_submit_is_refused(trial) -> None:
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    append_raw(
        w1,
        "record.submitted",
        {"form": "vitals", "data": {}},
        subject="participant:WUH01-001",
        role="auditor",
        user="auditor1",
    )
    with pytest.raises(Refused, match=r"role auditor"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)


def test_unknown_event_type_in_a_bundle_is_refused(trial) -> None:
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    append_raw(w1, "hub.takeover", {"x": 1})
    with pytest.raises(Refused, match=r"hub\.takeover"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)


def test_hub_bundle_carrying_a_ward_only_event_is_refused_at_the_ward(trial) -> None:
    """The other direction: what the hub sends a ward may carry only what a hub may originate."""
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    append_raw(
        h,
        "record.submitted",
        {"form": "vitals", "data": {}},
        subject="participant:WUH01-001",
        role="clinician",
    )
    out = root / "to-ward"
    out.mkdir()
    s = open_(h)
    try:
        files = hub.outbound_files(s, device_of(w1), out)
    finally:
        s.close()
    ws = open_(w1)
    try:
        with pytest.raises(Refused, match=r"record\.submitted"):
            for f in sorted(p for p in files if p.name.endswith(".tar.age")):
                ward.import_file(ws, f)
    finally:
        ws.close()


def test_genuine_hub_only_events_still_flow_from_the_hub(trial) -> None:
    """Accept side: the same types, originated by the hub, reach the ward."""
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    d = open_(h, "dsmg")
    try:
        registry.send_decision(d, "WUH01", "continue enrolment", "interim fine")
    finally:
        d.close()
    out = root / "to-ward"
    out.mkdir()
    s = open_(h)
    try:
        files = hub.outbound_files(s, device_of(w1), out)
    finally:
        s.close()
    ws = open_(w1)
    try:
        for f in sorted(p for p in files if p.name.endswith(".tar.age")):
            ward.import_file(ws, f)
        [got] = registry.decisions_received(ws.store)
        assert got["decision"] == "continue enrolment" and got["detail"] == "interim fine"
        # HubDecision is cast from a sync_decisions row: its keys must be the table's columns.
        from typing import get_type_hints

        columns = {r[1] for r in ws.store.execute("PRAGMA table_info(sync_decisions)")}
        assert set(got) == set(get_type_hints(registry.HubDecision)) == columns
    finally:
        ws.close()


# -- local append ----------------------------------------------------------------------


def test_local_append_refuses_what_this_device_may_not_originate(tmp_path: Path) -> None:
    w = make_ward(tmp_path)
    h = make_hub(tmp_path)
    s = open_(w)
    try:
        with pytest.raises(Refused, match=r"dsmg\.decision.*hub"):
            s.append(
                type="dsmg.decision",
                subject="site:WUH01",
                body={"site": "WUH01", "decision": "x", "detail": ""},
            )
        with pytest.raises(Refused, match=r"unknown event type"):
            s.append(type="made.up", body={})
        users.add_user(s, "aud", "Au Ditor", "auditor", PASSWORD)
        assert eventlog.count(s.store) == s.store.scalar(
            "SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,)
        )
    finally:
        s.close()
    a = open_(w, "aud")
    try:
        with pytest.raises(Refused, match=r"role auditor"):
            a.append(
                type="record.submitted", subject="participant:WUH01-001", body={"form": "vitals", "data": {}}
            )
    finally:
        a.close()
    hs = open_(h)
    try:
        with pytest.raises(Refused, match=r"record\.submitted.*ward"):
            hs.append(
                type="record.submitted", subject="participant:WUH01-001", body={"form": "vitals", "data": {}}
            )
    finally:
        hs.close()


def test_every_event_type_the_code_appends_is_declared() -> None:
    """A static check: each `type="..."` the code appends has a declaration (and vice versa)."""
    import re

    from wardcrf import authority

    root = Path(__file__).resolve().parents[2]
    found: set[str] = set()
    for path in [*root.glob("wardcrf/**/*.py"), *root.glob("sync/*.py"), *root.glob("photos/*.py")]:
        text = path.read_text()
        found |= set(re.findall(r'type="([a-z_]+\.[a-z_.]+)"', text))
        found |= set(re.findall(r'EVENT(?:_[A-Z_]+)? = "([a-z_]+\.[a-z_.]+)"', text))
    from scratch_events import SCRATCH

    declared = set(authority.EVENT_TYPES) - set(SCRATCH)
    assert found <= declared, sorted(found - declared)
    assert declared - found <= {"sync.bundle_refused"}, sorted(declared - found)


def test_docs_print_the_authority_table_as_the_code_has_it() -> None:
    from scratch_events import SCRATCH

    from wardcrf import authority

    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert authority.markdown_table(leave_out=SCRATCH) in docs


def test_a_record_of_a_form_its_role_may_not_write_is_refused(trial) -> None:
    """The envelope role is one that writes records, but not this form: a pharmacist's dose."""
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    append_raw(
        w1,
        "record.submitted",
        {"form": "dose", "data": {"dose_number": 1}},
        subject="participant:WUH01-001",
        role="pharmacist",
        user="admin",
    )
    with pytest.raises(Refused, match=r"role pharmacist may not submit 'dose' records"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)


def test_a_protocol_amendment_applied_by_a_role_that_may_not_is_refused_at_the_hub(trial) -> None:
    """`protocol.applied` (issue 17): only an investigator moves a participant to a newer version.

    A clinician's key holder writing one into the laptop's chain gets the bundle refused whole.
    """
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    body = {"participant": "WUH01-001", "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.1"}
    append_raw(
        w1,
        "protocol.applied",
        body,
        subject="participant:WUH01-001",
        role="clinician",
        user="clinician1",
        reason="forged",
    )
    with pytest.raises(
        Refused, match=r"role clinician may not originate protocol\.applied \(allowed: investigator"
    ):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT * FROM protocol_applications") == []


def test_a_protocol_amendment_about_another_sites_participant_is_refused_at_the_hub(trial) -> None:
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    body = {"participant": "XYZ02-001", "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.1"}
    append_raw(
        w1,
        "protocol.applied",
        body,
        subject="participant:XYZ02-001",
        role="investigator",
        user="inv1",
        reason="forged",
    )
    with pytest.raises(Refused, match=r"participant XYZ02-001"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT * FROM protocol_applications") == []


def test_an_investigators_protocol_amendment_reaches_the_hub(trial) -> None:
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    body = {"participant": "WUH01-001", "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.1"}
    event = append_raw(
        w1,
        "protocol.applied",
        body,
        subject="participant:WUH01-001",
        role="investigator",
        user="inv1",
        reason="amendment 1 approved; re-consented",
    )
    statuses = [hub_import(h, f).outcome.status for f in export(w1, root / "genuine")]
    assert "applied" in statuses and set(statuses) <= {"applied", "already"}, statuses
    rows = hub_rows(h, "SELECT event_id, participant, to_version, reason FROM protocol_applications")
    assert rows == [
        {
            "event_id": event,
            "participant": "WUH01-001",
            "to_version": "1.1",
            "reason": "amendment 1 approved; re-consented",
        }
    ]


# -- a preparation at the pharmacy (issue 17): the pharmacist's record -----------------------------

PREPARED = {
    "kit_id": "Z1",
    "product": "ZMAPP",
    "steps": ["thaw", "dilute"],
    "start": "2020-03-16T00:00:00Z",
    "end": "2020-03-16T00:30:00Z",
    "by": "pharmacist1",
    "values": {"volume_ml": {"value": 250.0, "unit": "mL"}, "diluent": "saline"},
    "use_by": "2020-03-16T08:30:00Z",
}


@pytest.mark.parametrize("role", ["clinician", "investigator"])
def test_a_nurses_preparation_at_the_pharmacy_is_refused_at_the_hub(trial, role) -> None:
    """Only a pharmacist records a kit's preparation at the pharmacy (`coldchain.prepare`): a ward nurse's
    (or investigator's) record of it, written into the laptop's chain, gets the bundle refused whole."""
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    append_raw(
        w1,
        "record.submitted",
        {"form": "coldchain.preparation", "data": {**PREPARED, "by": f"{role}1"}},
        subject="lot:LZ1",
        role=role,
        user=f"{role}1",
    )
    with pytest.raises(
        Refused,
        match=rf"role {role} may not submit 'coldchain\.preparation' records \(allowed: pharmacist "
        r"\(coldchain\.prepare\)\)",
    ):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT * FROM cc_preparations") == []


def test_a_pharmacists_preparation_at_the_pharmacy_reaches_the_hub(trial) -> None:
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    event = append_raw(
        w1,
        "record.submitted",
        {"form": "coldchain.preparation", "data": PREPARED},
        subject="lot:LZ1",
        role="pharmacist",
        user="pharmacist1",
    )
    statuses = [hub_import(h, f).outcome.status for f in export(w1, root / "genuine")]
    assert "applied" in statuses and set(statuses) <= {"applied", "already"}, statuses
    rows = hub_rows(
        h, "SELECT event_id, kit_id, product, by_user, use_by_t - end_t AS within FROM cc_preparations"
    )
    assert rows == [
        {"event_id": event, "kit_id": "Z1", "product": "ZMAPP", "by_user": "pharmacist1", "within": 8 * 3600}
    ]


def test_a_preparation_whose_data_is_malformed_is_refused_at_the_hub(trial) -> None:
    """Hostile: a preparation without its steps, or with a field name no protocol could declare."""
    h, w1, root = trial["hub"], trial["w1"], trial["root"]
    bad = {**PREPARED, "steps": [], "values": {"Volume ML\x1b": 1}}
    append_raw(
        w1,
        "record.submitted",
        {"form": "coldchain.preparation", "data": bad},
        subject="lot:LZ1",
        role="pharmacist",
        user="pharmacist1",
    )
    with pytest.raises(Refused, match=r"coldchain\.preparation data"):
        for f in export(w1, root / "forged"):
            hub_import(h, f)
    assert hub_rows(h, "SELECT * FROM cc_preparations") == []
