"""A format-2 protocol that re-encodes nothing runs a ward, through the CLI, in-process (issue 17).

PALM (four open-label arms, weight-based infusions, a loading dose then
maintenance, vitals before and after each infusion, 2-8 C products): a site
made with `wardcrf init --protocol palm`, its forms the model's; consent;
eligibility failing (the criterion named) and passing; enrollment; an arm
allocated from a list the hub made; each scheduled infusion with the engine's
gates deciding (the pre-infusion vitals, the custody of the vial); a missed
infusion and a deviation; an AE; SDTM and ODM exports with the model (ODM
valid against the XSD); `audit verify`. The clock is the app's
(`WARDCRF_FAKE_NOW`), moved forward through the course; nothing waits.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from site_users import PASSWORD
from synckit import card_of, connect, open_
from wardcrf.sync import hub, ward
from wf_support import photo_file, ready_kit_on

from wardcrf import users
from wardcrf.engine import model, schedule
from wardcrf.randomization import service
from wardcrf.site import Site

KIN = ZoneInfo("Africa/Kinshasa")
WITNESS = {"WARDCRF_PASSWORD_INVESTIGATOR": PASSWORD}


class Ward:
    """A PALM ward made by `wardcrf init --protocol palm`, its clock the app's."""

    def __init__(self, cli, root: Path, name: str = "palm") -> None:
        self.cli, self.root, self.dir = cli, root, root / "ward"
        self.now = datetime.now(KIN).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=20)
        self.name = name
        self.pages = 0

    def env(self, **more: str) -> dict[str, str]:
        return {"WARDCRF_DATA_DIR": str(self.dir), "WARDCRF_FAKE_NOW": self.now.isoformat(), **more}

    def run(self, *args: str, user: str = "clinician", **env: str):
        return self.cli(*args, user=user, env=self.env(**env))

    def at(self, moment: datetime) -> None:
        assert moment >= self.now, "the ward's clock only moves forward"
        self.now = moment

    def site(self) -> Site:
        return Site.open(self.dir)

    def consent(self) -> str:
        self.pages += 1
        r = self.run(
            "submit",
            "consent",
            "consenter=participant",
            "form_version=1.0",
            "witness_1=investigator",
            f"photos=@{photo_file(self.root / 'pages', f'{self.name} consent {self.pages}')}",
            f"time={(self.now - timedelta(minutes=30)).isoformat()}",
            "--json",
            **WITNESS,
        )
        assert r.code == 0, r.err
        return str(json.loads(r.out)["participant"])

    def screen(self, pid: str, **kw: str):
        values = {
            "date": self.now.date().isoformat(),
            "age": "34",
            "sex": "F",
            "pregnant": "no",
            "weight": "62",
            "symptom_onset": (self.now.date() - timedelta(days=3)).isoformat(),
            "ebov_pcr_positive": "yes",
            "ct_np": "20",
            "prior_ebov_therapeutic": "no",
        }
        values.update(kw)
        return self.run("submit", "screening", "--participant", pid, *(f"{k}={v}" for k, v in values.items()))


@pytest.fixture
def palm(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    w = Ward(cli, tmp_path)
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = w.cli(
        "init",
        "--site",
        "KIN01",
        "--device",
        "etc-laptop1",
        "--admin",
        "admin",
        "--zone",
        "Africa/Kinshasa",
        "--protocol",
        "palm",
        env=w.env(),
    )
    assert r.code == 0, r.err
    s = w.site().unlock("admin", PASSWORD)
    try:
        for name, role in (
            ("clinician", "clinician"),
            ("investigator", "investigator"),
            ("clinician2", "clinician"),
            ("pharmacist", "pharmacist"),
            ("dsmg", "dsmg"),
            ("auditor", "auditor"),
            ("coordinator", "coordinator"),
        ):
            users.add_user(s, name, f"{name.title()} User", role, PASSWORD)
    finally:
        s.close()
    # The hub makes the allocation list for this laptop and sends it in its bundle.
    h = hub.init(
        tmp_path / "hub", admin="admin", password=PASSWORD, protocol_file=model.shipped("palm.toml")
    ).site
    hs = open_(h, "admin")
    try:
        users.add_user(hs, "coordinator", "Coco Ordinator", "coordinator", PASSWORD)
    finally:
        hs.close()
    connect(w.site(), h)
    device = card_of(w.site()).device
    hs = open_(h, "coordinator")
    try:
        service.make_list(hs, model.shipped("palm.toml"), "KIN01", device, 8)
    finally:
        hs.close()
    stick = tmp_path / "stick"
    stick.mkdir()
    hs = open_(h, "admin")
    try:
        files = hub.outbound_files(hs, device, stick)
    finally:
        hs.close()
    ws = open_(w.site())
    try:
        for f in files:
            ward.import_file(ws, f)
    finally:
        ws.close()
    return w


def _vitals(w: Ward, pid: str, timepoint: str, n: int, when: datetime):
    return w.run(
        "submit",
        "vitals",
        "--participant",
        pid,
        f"timepoint={timepoint}",
        f"infusion={n}",
        f"time={when.isoformat()}",
        "temp=38.2",
        "pulse=96",
        "resp=20",
        "sysbp=112",
        "diabp=70",
        "oxysat=97",
    )


def _infusion(w: Ward, pid: str, kit: str, start: datetime, dose_mg: str, *more: str):
    return w.run(
        "submit",
        "infusion",
        "--participant",
        pid,
        f"kit_id={kit}",
        "lot=LOT-P1",
        f"dose_mg={dose_mg}",
        "volume=250",
        "rate=125",
        f"start={start.isoformat()}",
        f"end={(start + timedelta(hours=2)).isoformat()}",
        *more,
    )


def test_palm_runs_a_ward_end_to_end_through_the_cli(palm: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    w = palm
    m = model.shipped("palm.toml")
    # the forms are the model's
    r = w.run("form", "show", "infusion", "--json")
    assert r.code == 0, r.err
    shown = {f["name"]: f for f in json.loads(r.out)["fields"]}
    assert shown["dose_mg"]["unit"] == "mg" and shown["dose_mg"]["hard_range"] == [1, 60000]
    assert shown["kit_id"]["id"] == "kit" and shown["window"]["computed"] is True

    # eligibility fails: RT-PCR negative, named by the criterion's code and label
    failing = w.consent()
    r = w.screen(failing, ebov_pcr_positive="no", ct_np="")
    assert r.code == 0, r.err
    r = w.run("participant", "show", failing, "--json", user="auditor")
    assert r.code == 0, r.err
    assert json.loads(r.out)["failed_criteria"] == ["pcr"]
    r = w.run("submit", "enrollment", "--participant", failing, f"date={w.now.date().isoformat()}")
    assert r.code == 1 and "screen failure" in r.err and "pcr" in r.err
    assert len(r.err.strip().splitlines()) == 1

    # a field the form says is out of range, and a required_when, are refused before anything is saved
    other = w.consent()
    r = w.screen(other, weight="900")
    assert r.code == 1 and "weight" in r.err
    r = w.screen(other, ct_np="")
    assert r.code == 1 and "ct_np" in r.err and "required when" in r.err

    # eligible participants, enrolled and randomized until one is on a course of several infusions
    chosen: tuple[str, str] | None = None
    for i in range(8):
        pid = other if i == 0 else w.consent()
        assert w.screen(pid).code == 0
        r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
        assert r.code == 0, r.err
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        arm = r.out.split("randomized: arm ", 1)[1].split()[0]
        if arm in ("ZMAPP", "RDV"):
            chosen = (pid, arm)
            break
    assert chosen is not None, "a block of at most 8 holds every arm"
    pid, arm = chosen
    randomized = w.now
    plan = schedule.plan(
        m,
        {"randomization": randomized},
        arm=arm,
        zone="Africa/Kinshasa",
        conditions={"exists(disposition where stage == 'end_of_treatment')": False},
    )
    slots = [s for adms in plan.values() for _adm, ss in adms for s in ss]
    assert len(slots) >= 3

    # infusion 1: refused until the pre-infusion vitals are recorded (a gate the protocol declares)
    s1 = slots[0]
    start = max(s1.opens, w.now) + timedelta(minutes=30)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root)
    r = _infusion(w, pid, "VIAL-0001", start, "3100")
    assert r.code == 1 and "vitals before infusion" in r.err, r.err
    assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, "VIAL-0001", start, "3100")
    assert r.code == 0, r.err
    assert _vitals(w, pid, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0
    # the same vial twice is refused (one kit, one administration)
    s2 = slots[1]
    start2 = s2.opens + timedelta(hours=9)
    w.at(start2 + timedelta(hours=3))
    r = _infusion(w, pid, "VIAL-0001", start2, "3100")
    assert r.code == 1 and "already used" in r.err

    # infusion 2 is not given (missed, with its reason); infusion 3 given, interrupted (a deviation)
    r = w.run("submit", "infusion", "--participant", pid, "not_given=yes", "not_given_reason=clinical")
    assert r.code == 0, r.err
    s3 = slots[2]
    start3 = s3.opens + timedelta(hours=9)
    w.at(start3 + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0003", start3.isoformat(), w.root)
    assert _vitals(w, pid, "pre_infusion", 3, start3 - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, "VIAL-0003", start3, "3100", "interruptions=1")
    assert r.code == 1 and "interruption_note" in r.err  # required_when interruptions > 0
    r = _infusion(w, pid, "VIAL-0003", start3, "3100", "interruptions=1", "interruption_note=line occluded")
    assert r.code == 0, r.err
    s = w.site().unlock("auditor", PASSWORD)
    try:
        rows = s.store.rows(
            "SELECT data FROM records WHERE form = 'infusion' AND subject = ? ORDER BY created_at",
            (f"participant:{pid}",),
        )
    finally:
        s.close()
    recorded = [json.loads(r["data"]) for r in rows]
    assert [x["infusion_number"] for x in recorded] == [s1.number, s2.number, s3.number]
    assert [x["not_given"] for x in recorded] == [False, True, False]
    assert recorded[0]["prescribed_mg"]["value"] == (3100 if arm == "ZMAPP" else 200)
    assert recorded[0]["window"] == "on_time" and recorded[2]["interruptions"] == 1

    # an AE after infusion 3
    r = w.run(
        "submit",
        "ae",
        "--participant",
        pid,
        "term=Infusion-related reaction",
        "prespecified=infusion_reaction",
        f"infusion={s3.number}",
        f"onset={w.now.date().isoformat()}",
        "grade=2",
        "serious=no",
        "causality=possibly_related",
        "outcome=recovering",
        f"first_known={w.now.date().isoformat()}",
    )
    assert r.code == 0, r.err
    r = w.run(
        "submit",
        "ae",
        "--participant",
        pid,
        "term=Fever",
        "infusion=40",
        f"onset={w.now.date().isoformat()}",
        "grade=1",
        "serious=no",
        "causality=not_related",
        "outcome=recovered",
        f"first_known={w.now.date().isoformat()}",
    )
    assert r.code == 1

    # participant show: the engine's view (arm, each slot, the deviations the protocol names)
    r = w.run("participant", "show", pid, "--json", user="auditor")
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["arm"] == arm and shown["status"] == "in treatment" and shown["adverse_events"] == 1
    states = {a["number"]: a["state"] for a in shown["administrations"]}
    assert (states[s1.number], states[s2.number], states[s3.number]) == ("given", "not given", "given")
    named = {(d["code"], d.get("number")) for d in shown["deviations"]}
    assert ("missed_infusion", s2.number) in named
    assert ("interrupted", None) in named

    # exports with the model: the trial design and visits are PALM's; ODM valid against the XSD; the audit
    out = w.root / "exports"
    r = w.run("export", "sdtm", "--out", str(out / "sdtm"), user="auditor")
    assert r.code == 0, r.err

    def rows(name: str) -> list[dict[str, object]]:
        d = json.loads((out / "sdtm" / f"{name}.json").read_text("utf-8"))
        cols = [c["name"] for c in d["columns"]]
        return [dict(zip(cols, row, strict=True)) for row in d["rows"]]

    assert {r["ARMCD"] for r in rows("ta")} == {"ZMAPP", "RDV", "MAB114", "REGNEB3"}
    dm = {r["SUBJID"]: r for r in rows("dm")}
    assert dm[pid]["ARMCD"] == arm and dm[failing]["ARMNRS"] == "SCREEN FAILURE"
    r = w.run("export", "odm", "--out", str(out / "odm.xml"), user="auditor")
    assert r.code == 0, r.err
    import importlib.resources

    import xmlschema

    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "odm.xml"))) == []
    odm = (out / "odm.xml").read_text("utf-8")
    assert 'StudyEventDef OID="SE.D28"' in odm and 'FormDef OID="F.infusion"' in odm
    r = w.run("audit", "verify", "--json", user="auditor")
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out
