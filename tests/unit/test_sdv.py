"""Source-data verification (issue 22): a monitor marks records verified against their photographs.

Found: nothing recorded that a monitor compared a record with its source
document, and nothing reset when the record changed afterwards.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from wf_support import PASSWORD, Staff, _copy_site, make_ward

from wardcrf import records, sdv, users
from wardcrf.errors import AuthError, PermissionDenied, Refused, UsageError
from wardcrf.site import Site


@pytest.fixture
def site(data_dir: Path, _wf_template) -> Site:
    s = _copy_site(_wf_template[0], data_dir)
    admin = s.unlock("admin", PASSWORD)
    try:
        users.add_user(admin, "monitor", "Mona Monitor", "monitor", PASSWORD)
    finally:
        admin.close()
    return s


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def consent_of(ward: Staff) -> tuple[str, str]:
    pid = ward.consent()
    event = ward.clin.store.scalar(
        "SELECT event_id FROM records WHERE form = 'consent' AND subject = ?", (f"participant:{pid}",)
    )
    return pid, event


def test_a_monitor_marks_a_record_verified_against_its_photograph(ward):
    pid, consent = consent_of(ward)
    mon = ward.session("monitor")
    before = mon.store.scalar("SELECT count(*) FROM events")
    event = sdv.verify(mon, consent, password=PASSWORD)
    assert mon.store.scalar("SELECT count(*) FROM events") == before + 1
    assert event.type == "sdv.verified" and event.subject == f"participant:{pid}"
    b = event.body
    assert b["meaning"] == "verified" and b["signer"] == "monitor" and b["full_name"] == "Mona Monitor"
    photo = mon.store.scalar("SELECT sha256 FROM photo_bindings WHERE record_event = ?", (consent,))
    assert b["sources"] == [f"sha256:{photo}"] and b["scope"] == "record"
    rec = records.load(mon.store, consent)
    assert b["values"] == {k: sdv.value_hash(v) for k, v in rec.data.items()}
    st = sdv.record_status(mon.store, consent)
    assert st.state == sdv.VERIFIED and all(f.state == sdv.VERIFIED for f in st.fields)
    assert st.summary().startswith("source data verified by Mona Monitor (monitor)")


def test_an_amendment_after_verification_is_changed_since_verified_and_nothing_carries_over(ward):
    _pid, consent = consent_of(ward)
    mon = ward.session("monitor")
    sdv.verify(mon, consent, password=PASSWORD, fields=["form_version", "consenter"])
    st = sdv.record_status(mon.store, consent)
    assert st.state == sdv.PARTLY  # two fields of several
    assert {f.name: f.state for f in st.fields}["form_version"] == sdv.VERIFIED

    amendment = records.amend(ward.clin, consent, {"form_version": "1.1"}, reason="the page says 1.1")
    st = sdv.record_status(mon.store, consent)
    states = {f.name: f for f in st.fields}
    assert st.state == sdv.CHANGED and st.changed_fields == ["form_version"]
    assert states["form_version"].changed_by == [amendment.id]
    assert states["consenter"].state == sdv.VERIFIED  # item-level: only the amended field resets
    assert "CHANGED SINCE VERIFIED: form_version amended after verification" in st.summary()

    # Amending it back does not restore the verification: the monitor verifies again.
    records.amend(ward.clin, consent, {"form_version": "1.0"}, reason="misread: it was 1.0")
    assert sdv.record_status(mon.store, consent).state == sdv.CHANGED
    sdv.verify(mon, consent, password=PASSWORD)
    assert sdv.record_status(mon.store, consent).state == sdv.VERIFIED


def test_only_a_monitor_with_the_right_password_marks(ward):
    _pid, consent = consent_of(ward)
    for role in ("clinician", "investigator", "auditor", "coordinator", "admin"):
        with pytest.raises(PermissionDenied, match="allowed: monitor"):
            sdv.verify(ward.session(role), consent, password=PASSWORD)
    mon = ward.session("monitor")
    with pytest.raises(AuthError, match="wrong password"):
        sdv.verify(mon, consent, password="not-the-password")
    assert mon.store.scalar("SELECT count(*) FROM sdv_marks") == 0


def test_refusals_name_what_is_wrong_and_save_nothing(ward):
    pid, consent = consent_of(ward)
    mon = ward.session("monitor")
    with pytest.raises(Refused, match="unknown event"):
        sdv.verify(mon, "NOPE-1", password=PASSWORD)
    with pytest.raises(UsageError, match="has no field nonsense"):
        sdv.verify(mon, consent, password=PASSWORD, fields=["nonsense"])
    screening = ward.screen(pid)  # no photograph of its own
    with pytest.raises(UsageError, match="holds no photograph: name the source photograph"):
        sdv.verify(mon, screening.id, password=PASSWORD)
    with pytest.raises(UsageError, match="not a file to import"):
        sdv.verify(mon, screening.id, password=PASSWORD, sources=["@/tmp/x.jpg"])
    # A source photograph whose stored bytes were altered cannot support a verification.
    photo = mon.store.scalar("SELECT sha256 FROM photo_bindings WHERE record_event = ?", (consent,))
    mon.store.execute("DROP TRIGGER photo_blobs_no_update")
    mon.store.execute("UPDATE photo_blobs SET data = ? WHERE sha256 = ?", (b"altered", photo))
    with pytest.raises(Refused, match="is MISMATCH"):
        sdv.verify(mon, screening.id, password=PASSWORD, sources=[f"sha256:{photo}"])
    assert mon.store.scalar("SELECT count(*) FROM sdv_marks") == 0


def cli(data_dir: Path, user: str, *args: str, monkeypatch, password: str = PASSWORD) -> tuple[int, str, str]:
    for k, v in {
        "WARDCRF_DATA_DIR": str(data_dir),
        "WARDCRF_USER": user,
        "WARDCRF_PASSWORD": password,
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(k, v)
    from wardcrf.cli import main  # after COLUMNS: a console made at import keeps the width it saw

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def test_changed_since_verified_shows_where_changed_since_signed_shows(ward, site, monkeypatch, tmp_path):
    from pypdf import PdfReader

    pid, consent = consent_of(ward)
    d = site.data_dir
    code, out, err = cli(d, "monitor", "sdv", "verify", consent, "--json", monkeypatch=monkeypatch)
    assert code == 0, err
    assert json.loads(out)["state"] == sdv.VERIFIED
    records.amend(ward.clin, consent, {"form_version": "1.1"}, reason="the page says 1.1")

    code, out, err = cli(d, "auditor", "report", "sdv", monkeypatch=monkeypatch)
    assert code == 0, err
    assert "changed since verified" in out and pid in out
    code, out, _ = cli(d, "auditor", "report", "sdv", "--json", monkeypatch=monkeypatch)
    data = json.loads(out)
    group = next(g for g in data["groups"] if g["participant"] == pid and g["form"] == "consent")
    assert group[sdv.CHANGED] == 1 and data["totals"][sdv.CHANGED] == 1
    code, out, err = cli(d, "auditor", "report", "sdv", "-p", pid, monkeypatch=monkeypatch)
    assert code == 0 and f"consent {consent}: CHANGED SINCE VERIFIED: form_version" in out, out + err
    code, out, _ = cli(d, "auditor", "sdv", "show", consent, monkeypatch=monkeypatch)
    assert "form_version: changed since verified" in out

    code, out, err = cli(d, "auditor", "participant", "show", pid, monkeypatch=monkeypatch)
    assert code == 0 and "1 changed since verified" in out, out + err
    code, out, _ = cli(d, "auditor", "log", "--type", "sdv.", "--json", monkeypatch=monkeypatch)
    (entry,) = json.loads(out)
    assert entry["summary"].startswith(f"source-verified consent record {consent} (")
    assert entry["summary"].endswith("as verified (Mona Monitor)")

    pdf = tmp_path / "c.pdf"
    code, _, err = cli(d, "auditor", "report", "audit", "-p", pid, "--out", str(pdf), monkeypatch=monkeypatch)
    assert code == 0, err
    text = " ".join(" ".join(p.extract_text() or "" for p in PdfReader(str(pdf)).pages).split())
    assert "CHANGED SINCE VERIFIED: form_version amended after verification by Mona Monitor" in text

    code, _, err = cli(d, "clinician", "sdv", "verify", consent, monkeypatch=monkeypatch)
    assert code == 1 and "may not mark records source-verified" in err
    code, _, err = cli(d, "monitor", "sdv", "verify", monkeypatch=monkeypatch)
    assert code == 2 and "--participant ID --form FORM" in err
    code, _, err = cli(d, "monitor", "sdv", "verify", consent, "--form", "consent", monkeypatch=monkeypatch)
    assert code == 2 and "not both" in err
    code, out, err = cli(
        d, "monitor", "sdv", "verify", "-p", pid, "--form", "consent", monkeypatch=monkeypatch
    )
    assert code == 0 and f"consent record {consent}" in out, err
    assert sdv.record_status(ward.clin.store, consent).state == sdv.VERIFIED  # verified again, anew
    code, _, err = cli(d, "monitor", "sdv", "verify", "-p", pid, "--form", "vitals", monkeypatch=monkeypatch)
    assert code == 1 and f"participant {pid} has no vitals record" in err
    code, _, err = cli(d, "auditor", "report", "sdv", "-p", "WUH01-999", monkeypatch=monkeypatch)
    assert code == 1 and "unknown participant" in err


@pytest.mark.slow
def test_sdv_travels_in_bundles_and_works_at_the_hub_from_a_monitors_sign_in(tmp_path, monkeypatch):
    """Marked on the ward (a site visit) -> applied at the hub; marked at the hub -> reset by a ward amendment."""
    from wardcrf.sync import demo as hub_demo
    from wardcrf.sync import hub, ward

    from wardcrf.workflow import demo

    pw = demo.DEMO_PASSWORD
    ward_dir, hub_dir, stick = tmp_path / "ward", tmp_path / "hub", tmp_path / "stick"
    demo.seed(ward_dir, pw)  # its users include a monitor
    w_mon = Site.open(ward_dir).unlock("monitor", pw)
    try:
        consent = w_mon.store.scalar(
            "SELECT event_id FROM records WHERE form = 'consent' AND subject = 'participant:WUH01-001'"
        )
        screening = w_mon.store.scalar(
            "SELECT event_id FROM records WHERE form = 'screening' AND subject = 'participant:WUH01-002'"
        )
        consent2_photo = w_mon.store.scalar(
            "SELECT b.sha256 FROM photo_bindings b JOIN records r ON r.event_id = b.record_event"
            " WHERE r.form = 'consent' AND r.subject = 'participant:WUH01-002'"
        )
        on_ward = sdv.verify(w_mon, consent, password=pw, note="site visit: consent page compared")
    finally:
        w_mon.close()

    hub_demo.seed_hub(ward_dir, hub_dir, pw)  # the ward's bundles, the SDV mark among their events
    h_mon = Site.open(hub_dir).unlock("monitor", pw)  # the hub's own monitor account
    try:
        st = sdv.record_status(h_mon.store, consent)
        assert st.state == sdv.VERIFIED and st.last_mark and st.last_mark.event_id == on_ward.id
        at_hub = sdv.verify(h_mon, screening, password=pw, sources=[consent2_photo[:12]])
        assert at_hub.device != on_ward.device  # the hub's own chain
        assert sdv.record_status(h_mon.store, screening).state == sdv.VERIFIED
    finally:
        h_mon.close()

    # Back on the ward, the clinician corrects the screening; the bundle reaches the hub.
    clin = Site.open(ward_dir).unlock("clinician", pw)
    try:
        amendment = records.amend(clin, screening, {"severity": "critical"}, reason="re-graded on the chart")
        stick.mkdir()
        files = ward.export(clin, stick).files
    finally:
        clin.close()
    h_admin = Site.open(hub_dir).unlock("admin", pw)
    try:
        done = hub.import_files(h_admin, files)
        assert all(i.result is not None and i.result.ok for i in done)
        st = sdv.record_status(h_admin.store, screening)
        assert st.state == sdv.CHANGED and st.changed_fields == ["severity"]
        assert {f.name: f for f in st.fields}["severity"].changed_by == [amendment.id]
    finally:
        h_admin.close()
    # The hub's mark travels back to the ward in the hub's own bundles (its chain), and holds there too.
    back = tmp_path / "back"
    back.mkdir()
    h_admin = Site.open(hub_dir).unlock("admin", pw)
    try:
        ward_device = h_admin.store.scalar("SELECT device FROM sync_devices LIMIT 1")
        sent = hub.outbound_files(h_admin, ward_device, back)
    finally:
        h_admin.close()
    w_admin = Site.open(ward_dir).unlock("admin", pw)
    try:
        for f in sorted(sent, key=lambda p: (p.name.endswith(".json"), p.name)):
            ward.import_file(w_admin, f)
        assert w_admin.store.one("SELECT 1 FROM sdv_marks WHERE event_id = ?", (at_hub.id,))
        assert sdv.record_status(w_admin.store, screening).state == sdv.CHANGED  # the ward's own amendment
    finally:
        w_admin.close()
    code, out, err = cli(
        hub_dir, "monitor", "report", "sdv", "-p", "WUH01-002", monkeypatch=monkeypatch, password=pw
    )
    assert code == 0 and "CHANGED SINCE VERIFIED: severity" in out, out + err
    code, _, err = cli(hub_dir, "admin", "db", "rebuild", "--check", monkeypatch=monkeypatch, password=pw)
    assert code == 0, err  # sdv_marks is a projection of the log, at the hub too
    shutil.rmtree(stick)


def test_the_desk_read_model_puts_a_record_beside_its_photographs(ward):
    """What the audit screen will show (after the screens refactor): values, photos re-hashed, SDV per field."""
    from wardcrf.reports import desk

    _pid, consent = consent_of(ward)
    mon = ward.session("monitor")
    sdv.verify(mon, consent, password=PASSWORD, fields=["form_version"])
    view = desk.desk(ward.aud, consent)
    assert view.form == "consent" and view.form_label
    by_name = {f.name: f for f in view.fields}
    assert by_name["form_version"].sdv_state == sdv.VERIFIED
    assert by_name["witness_1"].sdv_state == sdv.UNVERIFIED
    assert "(user)" not in by_name["witness_1"].label  # printed labels, no entry hints
    (photo,) = view.photos
    assert photo.hash_ok and photo.current and photo.field == "photos"
    assert json.loads(json.dumps(view.as_json(), default=str))["sdv"]["state"] == sdv.PARTLY
    with pytest.raises(Refused, match="unknown event"):
        desk.desk(ward.aud, "NOPE-1")


def test_the_odm_export_carries_each_verification_and_changed_since_verified(
    ward, site, monkeypatch, tmp_path
):
    """ODM 1.3.2: a mark is a Context FormData of the record it verifies, signed with the meaning
    "verified"; an amendment after it adds "changed since verified" naming the field. XSD-valid."""
    import importlib.resources
    import xml.etree.ElementTree as ET

    import xmlschema

    pid, consent = consent_of(ward)
    mon = ward.session("monitor")
    first = sdv.verify(mon, consent, password=PASSWORD, fields=["form_version", "consenter"])
    amendment = records.amend(ward.clin, consent, {"form_version": "1.1"}, reason="the page says 1.1")
    second = sdv.verify(mon, consent, password=PASSWORD, fields=["consenter"])
    out = tmp_path / "trial.xml"
    code, _, err = cli(site.data_dir, "auditor", "export", "odm", "--out", str(out), monkeypatch=monkeypatch)
    assert code == 0, err
    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out))) == []
    from odmlib import loader, odm_loader

    ldr = loader.ODMLoader(odm_loader.XMLODMLoader())
    ldr.open_odm_document(str(out))
    odm = ldr.root()  # odmlib's strict loader: every Signature has its ID, elements in order
    assert odm.validate(collect_errors=True) == [] and odm.verify_order()

    q = "{http://www.cdisc.org/ns/odm/v1.3}"
    root = ET.parse(out).getroot()
    series = [fd for fd in root.iter(f"{q}FormData") if fd.get("FormRepeatKey") == consent]
    contexts = {
        fd.find(f"{q}Signature").get("ID"): fd
        for fd in series
        if fd.get("TransactionType") == "Context" and fd.find(f"{q}Signature") is not None
    }
    marked = contexts[f"SIG.{first.id}"]
    assert marked.find(f"{q}Signature/{q}SignatureRef").get("SignatureOID") == "SD.verified"
    assert marked.find(f"{q}Signature/{q}UserRef").get("UserOID") == "USR.monitor"
    comments = [c.text for c in marked.iter(f"{q}Comment")]
    assert comments[0].startswith(f"source-data verification {first.id} by Mona Monitor (monitor)")
    assert f"form_version (amended by {amendment.id})" in comments[1]
    assert "changed since verified" in comments[1]
    # the later mark holds: no "changed since verified" on it; and it comes after the amendment
    later = [c.text for c in contexts[f"SIG.{second.id}"].iter(f"{q}Comment")]
    assert len(later) == 1 and "consenter verified against sha256:" in later[0]
    kinds = [fd.get("TransactionType") for fd in series]
    assert kinds.index("Update") < series.index(contexts[f"SIG.{second.id}"])
    # the verified meaning is declared once; the mark is not also an AuditRecord
    defs = [sd.get("OID") for sd in root.iter(f"{q}SignatureDef")]
    assert defs.count("SD.verified") == 1
    assert all(first.id not in (ar.get("ID") or "") for ar in root.iter(f"{q}AuditRecord"))
    assert pid in {sd.get("SubjectKey") for sd in root.iter(f"{q}SubjectData")}
