"""Format-2 protocols that re-encode nothing run a ward, through the CLI, in-process (issue 17).

PALM (four open-label arms, weight-based infusions, a loading dose then
maintenance, vitals before and after each infusion, 2-8 C products): a site
made with `wardcrf init --protocol palm`, its forms the model's; consent;
eligibility failing (the criterion named) and passing; enrollment; an arm
allocated from a list the hub made; each scheduled infusion with the engine's
gates deciding (the pre-infusion vitals, the custody of the vial); a missed
infusion and a deviation; an AE; SDTM and ODM exports with the model (ODM
valid against the XSD); `audit verify`. The clock is the app's
(`WARDCRF_FAKE_NOW`), moved forward through the course; nothing waits.

PALM007 (double blind, a kit number only; tablets every 12 h for 14 days by
weight band; one bottle per participant's course): the same path, with the
allocation gate refusing another kit, a late dose, a dose not given, one
without food and a wrong dose named as the protocol's deviations, doses
missed as time passes, and another participant refused the bottle.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from site_users import PASSWORD
from synckit import card_of, connect, open_
from trial_staff import ELIGIBLE
from typed_support import assert_shape
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
        self.hub: Site | None = None

    def env(self, **more: str) -> dict[str, str]:
        return {"WARDCRF_DATA_DIR": str(self.dir), "WARDCRF_FAKE_NOW": self.now.isoformat(), **more}

    def run(self, *args: str, user: str = "clinician", **env: str):
        return self.cli(*args, user=user, env=self.env(**env))

    def at(self, moment: datetime) -> None:
        assert moment >= self.now, "the ward's clock only moves forward"
        self.now = moment

    def site(self) -> Site:
        return Site.open(self.dir)

    def consent(self, at: datetime | None = None) -> str:
        self.pages += 1
        r = self.run(
            "submit",
            "consent",
            "consenter=participant",
            "form_version=1.0",
            "witness_1=investigator",
            f"photos=@{photo_file(self.root / 'pages', f'{self.name} consent {self.pages}')}",
            f"time={(at or self.now - timedelta(minutes=30)).isoformat()}",
            "--json",
            **WITNESS,
        )
        assert r.code == 0, r.err
        return str(json.loads(r.out)["participant"])

    def screen(self, pid: str, **kw: str):
        if self.name == "palm007":
            return self.screen007(pid, **kw)
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

    def screen007(self, pid: str, **kw: str):
        values = {**ELIGIBLE["PALM007"](self.now.date()), **kw}
        return self.run("submit", "screening", "--participant", pid, *(f"{k}={v}" for k, v in values.items()))


def _ward(
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    source: str | None = None,
    *,
    site: str = "KIN01",
    trial_hub: Site | None = None,
) -> Ward:
    """`wardcrf init --protocol NAME` (or a file holding `source`), its people, and an allocation list from
    the trial's hub (a new one, or `trial_hub`: another site's ward of the same trial made it)."""
    w = Ward(cli, tmp_path, name)
    given = name
    if source is not None:
        given = str(tmp_path / f"{name}-variant.toml")
        Path(given).write_text(source, "utf-8")
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = w.cli(
        "init",
        "--site",
        site,
        "--device",
        "etc-laptop1",
        "--admin",
        "admin",
        "--zone",
        "Africa/Kinshasa",
        "--protocol",
        given,
        env=w.env(),
    )
    assert r.code == 0, r.err
    s = w.site().unlock("admin", PASSWORD)
    try:
        for user, role in (
            ("clinician", "clinician"),
            ("investigator", "investigator"),
            ("clinician2", "clinician"),
            ("pharmacist", "pharmacist"),
            ("dsmg", "dsmg"),
            ("auditor", "auditor"),
            ("coordinator", "coordinator"),
        ):
            users.add_user(s, user, f"{user.title()} User", role, PASSWORD)
    finally:
        s.close()
    trial = model.parse(source, given) if source is not None else model.shipped(f"{name}.toml")
    # The trial's hub (its protocol, not the shipped default) makes the list for this laptop.
    h = trial_hub
    if h is None:
        h = hub.init(tmp_path / "hub", admin="admin", password=PASSWORD, protocol_file=trial).site
        hs = open_(h, "admin")
        try:
            users.add_user(hs, "coordinator", "Coco Ordinator", "coordinator", PASSWORD)
        finally:
            hs.close()
    connect(w.site(), h)
    device = card_of(w.site()).device
    w.hub = h
    # An investigator's first sign-in makes the laptop's unblinding key; its bundle takes it to the
    # hub, which seals a blinded list to it (wardcrf/unblindkeys.py).
    open_(w.site(), "investigator").close()
    assert all(r.ok for r in _to_the_hub(w))
    hs = open_(h, "coordinator")
    try:
        service.make_list(hs, trial, site, device, 8)
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


def _to_the_hub(w: Ward) -> list[object]:
    """Every bundle the ward has not sent, imported at the trial's hub: what each import says."""
    out = w.root / "outbox"
    out.mkdir(exist_ok=True)
    ws = open_(w.site())
    try:
        files = ward.export(ws, out).files
    finally:
        ws.close()
    hs = open_(w.hub, "admin")
    try:
        return [hub.import_file(hs, f) for f in files if f.name.endswith(".tar.age")]
    finally:
        hs.close()


@pytest.fixture
def palm(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm")


@pytest.fixture
def palm007(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm007")


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


def _product(arm: str) -> str:
    """The product a PALM arm's infusions give (the vial the cold chain must have received)."""
    return model.shipped("palm.toml").regimens_of(arm)[0].administrations[0].product


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
    # `protocol show` says what the engine runs
    r = w.run("protocol", "show", "--json", user="auditor")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["format"] == 2 and [a["code"] for a in info["arms"]] == ["ZMAPP", "RDV", "MAB114", "REGNEB3"]
    assert info["regimens"]["remdesivir"][1]["schedule"] == "9-13 from randomization day 2, daily"
    assert info["regimens"]["zmapp"][0]["dose"] == "50 mg/kg"
    r = w.run("protocol", "show", user="auditor")
    assert r.code == 0 and "Arm RDV:" in r.out and "particles" not in r.out
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
    r = w.run("randomize", failing, "--stratum", "ct_np=HIGH")  # the gate before `randomize`, too
    assert r.code == 1 and "screen failure" in r.err and len(r.err.strip().splitlines()) == 1

    # a field the form says is out of range, and a required_when, are refused before anything is saved
    other = w.consent()
    r = w.screen(other, weight="900")
    assert r.code == 1 and "weight" in r.err
    r = w.screen(other, ct_np="")
    assert r.code == 1 and "ct_np" in r.err and "required when" in r.err

    # eligible participants, enrolled and randomized until one is on a course of several infusions
    chosen: tuple[str, str] | None = None
    enrolled: list[tuple[str, str]] = []
    for i in range(8):
        pid = other if i == 0 else w.consent()
        assert w.screen(pid).code == 0
        r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
        assert r.code == 0, r.err
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        arm = r.out.split("randomized: arm ", 1)[1].split()[0]
        enrolled.append((pid, arm))
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
    ready_kit_on(w.site(), "VIAL-0001", start.isoformat(), w.root, _product(arm))
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
    ready_kit_on(w.site(), "VIAL-0003", start3.isoformat(), w.root, _product(arm))
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
        queued = s.store.one(
            "SELECT next_dose, next_due, vitals_owed FROM ward_queue WHERE participant = ?", (pid,)
        )
    finally:
        s.close()
    # the ward queue (the TUI's ward order): the first infusion without a record, the vitals owed after 3
    assert queued[2] == 1
    if arm == "ZMAPP":  # every infusion of the course has a record
        assert (queued[0], queued[1]) == (None, None)
    else:  # remdesivir: the next maintenance dose
        fourth = slots[3]
        utc = (fourth.due or fourth.opens).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (queued[0], queued[1]) == (fourth.number, utc)
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

    # the worklist and the ward list read the same engine: infusion 3's vitals after it are owed
    r = w.run("today", "--json")
    assert r.code == 0, r.err
    from wardcrf.workflow.status import Worklist

    assert_shape(json.loads(r.out), Worklist)  # the worklist is typed, its items too (issue #16)
    mine = [i for i in json.loads(r.out)["items"] if i["participant"] == pid]
    mine = [i for i in mine if not i["what"].startswith("vitals (DAY ")]  # the daily round's (calendar visit)
    # named as the worklist names the administration (its `worklist` text, "ZMapp infusion 3")
    adm3 = next(a for a in m.regimens[s3.regimen].administrations if a.code == s3.administration)
    assert adm3.worklist and "{n}" in adm3.worklist
    assert {
        "what": f"vitals after infusion ({adm3.worklist.replace('{n}', str(s3.number))})",
        "state": "overdue",
    }.items() <= mine[-1].items()
    r = w.run("participant", "list", "--json")
    assert r.code == 0, r.err
    row = next(x for x in json.loads(r.out) if x["id"] == pid)
    assert row["doses_given"] == 2 and row["post_dose_vitals_due"] == [s3.number] and row["deviations"] >= 2
    # the cumulative dose per unit, as `participant show` has it; never format 1's particles
    assert "cumulative_particles" not in row and row["cumulative_dose"] == shown["cumulative_dose"]
    if arm == "ZMAPP":
        assert row["cumulative_dose"] == [{"value": 6200.0, "unit": "mg"}]
    else:
        assert row["cumulative_dose"] and all(c["value"] > 0 for c in row["cumulative_dose"])
    # the endpoints, read out of the records: the participant dies on day 8 (the primary end point, and
    # time to death); the other participants are followed for less than 28 days, censored alive
    day = w.now.date().isoformat()
    r = w.run(
        "submit",
        "disposition",
        "--participant",
        pid,
        "stage=end_of_study",
        "status=death",
        f"date={day}",
        f"death_date={day}",
        "reason=Ebola virus disease",
    )
    assert r.code == 0, r.err
    shown = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    assert (shown["status"], shown["next_dose"]) == ("died", None)  # nothing is due after a death
    r = w.run("today", "--json")
    assert not [
        i
        for i in json.loads(r.out)["items"]
        if i["participant"] == pid and "infusion" in i["what"] and "vitals" not in i["what"]
    ]
    r = w.run("report", "endpoints", "--format", "json", user="auditor")
    assert r.code == 0, r.err
    from wardcrf.reports.engine_endpoints import EndpointsReport

    assert_shape(json.loads(r.out), EndpointsReport)  # typed down to each arm (issue #16)
    got = {e["code"]: e for e in json.loads(r.out)["endpoints"]}
    mortality = got["mortality_d28"]
    assert mortality["primary"] is True
    assert (mortality["arms"][arm]["k"], mortality["arms"][arm]["n"]) == (1, 1)
    assert mortality["arms"][arm]["censored_before_day"] == sum(1 for x in enrolled if x[1] == arm) - 1
    assert {c["against"] for c in mortality["comparisons"]} == {"ZMAPP"}
    deaths = got["time_to_death"]["arms"][arm]
    assert (deaths["events"], deaths["n"]) == (1, sum(1 for x in enrolled if x[1] == arm))
    r = w.run("report", "endpoints", user="auditor")
    assert r.code == 0 and "mortality_d28 (mortality, primary)" in r.out, r.err

    # exports with the model: the trial design and visits are PALM's; ODM valid against the XSD; the audit
    out = w.root / "exports"
    r = w.run("export", "sdtm", "--out", str(out / "sdtm"), "--check", user="auditor")
    # The conformance rules pass: ZMapp's "Q3D" is the protocol's own term of the extensible FREQ codelist
    # (palm.toml's frequency_extended), accepted and named in the report (it was "NOT clean").
    assert r.code == 0 and "[error]" not in r.out and r.out.rstrip().endswith("clean"), r.out
    assert "sponsor term of the extensible CDISC CT FREQ: 'Q3D' (Every 3 days)" in r.out, r.out

    def rows(name: str) -> list[dict[str, object]]:
        d = json.loads((out / "sdtm" / f"{name}.json").read_text("utf-8"))
        cols = [c["name"] for c in d["columns"]]
        return [dict(zip(cols, row, strict=True)) for row in d["rows"]]

    assert {r["ARMCD"] for r in rows("ta")} == {"ZMAPP", "RDV", "MAB114", "REGNEB3"}
    dm = {r["SUBJID"]: r for r in rows("dm")}
    assert dm[pid]["ARMCD"] == arm and dm[failing]["ARMNRS"] == "SCREEN FAILURE"
    assert dm[pid]["ACTARMCD"] == arm  # dosed: the actual arm is the planned one
    ex = [r for r in rows("ex") if r["USUBJID"] == f"PALM-{pid}"]
    assert len(ex) == 2  # one row per infusion given; the one not given is not an EX row
    assert {(r["EXROUTE"], r["EXDOSU"]) for r in ex} == {("INTRAVENOUS", "mg")}
    assert {r["EXTRT"] for r in ex} == {"ZMapp" if arm == "ZMAPP" else "remdesivir"}
    assert sorted(r["EXREFID"] for r in ex) == ["VIAL-0001", "VIAL-0003"]
    # SV: the protocol's visits (as TV names them), each record in the occurrence whose window holds it
    tv = {r["VISIT"]: r["VISITNUM"] for r in rows("tv")}
    sv = [r for r in rows("sv") if r["USUBJID"] == f"PALM-{pid}"]
    assert (sv[0]["VISIT"], sv[0]["VISITNUM"]) == ("SCREENING", 1)
    assert all(
        (r["VISIT"] in tv and tv[r["VISIT"]] == r["VISITNUM"]) or r["VISIT"].startswith("UNSCHEDULED")
        for r in sv
    )
    assert {r["VISIT"] for r in ex} == {"DAY 1", f"DAY {s3.day}"}
    # Every form feeds the domains its fields declare, whatever its name: the screening's weight is VS,
    # its Ebola PCR Ct value LB, its symptom onset MH's primary diagnosis; define.xml names the forms.
    vs = {(r["VSTESTCD"], r["VISIT"]): r for r in rows("vs") if r["USUBJID"] == f"PALM-{pid}"}
    assert vs[("WEIGHT", "SCREENING")]["VSORRES"] == "62" and vs[("WEIGHT", "SCREENING")]["VSORRESU"] == "kg"
    lb = {(r["LBTESTCD"], r["VISIT"]): r for r in rows("lb") if r["USUBJID"] == f"PALM-{pid}"}
    assert lb[("EBOVCTNP", "SCREENING")]["LBORRES"] == "20"
    mh = [r for r in rows("mh") if r["USUBJID"] == f"PALM-{pid}"]
    assert [(r["MHCAT"], r["MHTERM"][:5]) for r in mh] == [("PRIMARY DIAGNOSIS", "Ebola")]
    define = (out / "sdtm" / "define.xml").read_text("utf-8")
    lborres = define[define.index('Name="LBORRES"') :]
    assert "'screening'" in lborres[: lborres.index("</ItemDef>")]
    r = w.run("export", "odm", "--out", str(out / "odm.xml"), user="auditor")
    assert r.code == 0, r.err
    import importlib.resources

    import xmlschema

    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "odm.xml"))) == []
    odm = (out / "odm.xml").read_text("utf-8")
    assert 'StudyEventDef OID="SE.D28"' in odm and 'FormDef OID="F.infusion"' in odm
    # the data are filed under the visits: the screening's records in SE.SCR, the first day's vitals in the
    # first occurrence of the daily visit (its repeat key), an infusion (no visit lists it) in the Casebook
    assert '<StudyEventData StudyEventOID="SE.SCR" TransactionType="Upsert">' in odm
    assert '<StudyEventData StudyEventOID="SE.INPT" StudyEventRepeatKey="1" TransactionType="Upsert">' in odm
    from odmlib import loader, odm_loader

    ldr = loader.ODMLoader(odm_loader.XMLODMLoader())
    ldr.open_odm_document(str(out / "odm.xml"))
    assert ldr.root().validate(collect_errors=True) == [] and ldr.root().verify_order()
    r = w.run("db", "rebuild", "--check", user="admin")  # every projection is the log's, replayed
    assert r.code == 0, r.out + r.err
    r = w.run("audit", "verify", "--json", user="auditor")
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


def _tablets(w: Ward, pid: str, kit: str, when: datetime, *more: str):
    return w.run(
        "submit",
        "treatment",
        "--participant",
        pid,
        f"kit_id={kit}",
        f"time={when.isoformat()}",
        "dose_mg=600",
        "preparation=whole",
        "with_food=yes",
        *more,
    )


def test_palm007_runs_a_blinded_ward_end_to_end_through_the_cli(
    palm007: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PALM007: double blind (a kit number, the arm never shown), tecovirimat or placebo every 12 h for 14
    days by weight band; one bottle per participant for the course."""
    w = palm007
    m = model.shipped("palm007.toml")

    # eligibility fails on an exclusion criterion, named
    failing = w.consent()
    assert w.screen(failing, meglitinide="yes").code == 0
    shown = json.loads(w.run("participant", "show", failing, "--json", user="auditor").out)
    assert shown["status"] == "screen failure" and shown["failed_criteria"] == ["meglit"]
    r = w.run("submit", "enrollment", "--participant", failing, f"date={w.now.date().isoformat()}")
    assert r.code == 1 and "meglit" in r.err and len(r.err.strip().splitlines()) == 1

    # the criteria are reassessed on the enrollment day: a PCR more than 48 h old by then refuses it
    stale = w.consent(at=w.now - timedelta(days=3))
    three_days_ago = w.now.date() - timedelta(days=3)
    assert w.screen(stale, date=str(w.now.date() - timedelta(days=2)), pcr_date=str(three_days_ago)).code == 0
    assert json.loads(w.run("participant", "show", stale, "--json", user="auditor").out)["eligible"] is True
    r = w.run("submit", "enrollment", "--participant", stale, f"date={w.now.date().isoformat()}")
    assert r.code == 1 and "pcr (" in r.err and "enrollment day" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1

    pid = w.consent()
    screened = w.screen(pid)
    assert screened.code == 0, "eligible"
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    # no arm yet: the schedule depends on the allocation
    r = _tablets(w, pid, "K000001", w.now)
    assert r.code == 1 and "randomize first" in r.err
    r = w.run("randomize", pid)
    assert r.code == 0, r.err
    kit = r.out.split("randomized: kit ", 1)[1].split()[0]
    assert "TECOVIRIMAT" not in r.out and "PLACEBO" not in r.out
    randomized = w.now
    weight_facts = {"screening.weight < 120": True, "screening.weight >= 120": False}
    plan = schedule.plan(
        m, {"randomization": randomized}, arm="TECOVIRIMAT", zone="Africa/Kinshasa", conditions=weight_facts
    )
    slots = [s for adms in plan.values() for _adm, ss in adms for s in ss]
    assert len(slots) == 28  # every 12 h for 14 days

    # dose 1 on time; another kit than the one allocated is refused (the allocation gate)
    s1 = next(s for s in slots if s.closes > w.now + timedelta(minutes=30))
    t1 = max(s1.opens, w.now) + timedelta(minutes=15)
    w.at(t1 + timedelta(minutes=30))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), kit, t1.isoformat(), w.root)
    other_kit = "K999999" if kit != "K999999" else "K999998"
    r = _tablets(w, pid, other_kit, t1)
    assert r.code == 1 and f"is not the kit allocated to {pid}" in r.err, r.err
    r = _tablets(w, pid, kit, t1)
    assert r.code == 0, r.err
    # a second dose an hour later is refused: the protocol's least spacing is 8 h
    w.at(t1 + timedelta(minutes=75))
    r = _tablets(w, pid, kit, t1 + timedelta(hours=1))
    assert r.code == 1 and "least spacing is 8 h" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    # the next slot: taken late (after its window, before the next opens) -> a late dose
    s2 = slots[slots.index(s1) + 1]
    t2 = s2.closes + timedelta(minutes=30)
    w.at(t2 + timedelta(minutes=5))
    r = _tablets(w, pid, kit, t2)  # the same bottle: one participant's course
    assert r.code == 0, r.err
    # the next: not given (vomited); then one without food; then 400 mg of 600 prescribed
    s3, s4, s5 = (slots[slots.index(s1) + k] for k in (2, 3, 4))
    w.at(s3.due + timedelta(minutes=10))
    r = w.run(
        "submit",
        "treatment",
        "--participant",
        pid,
        f"kit_id={kit}",
        f"time={w.now.isoformat()}",
        "not_given=yes",
        "not_given_reason=vomited",
    )
    assert r.code == 0, r.err
    w.at(s4.due + timedelta(minutes=10))
    r = w.run(
        "submit",
        "treatment",
        "--participant",
        pid,
        f"kit_id={kit}",
        f"time={s4.due.isoformat()}",
        "dose_mg=600",
        "preparation=whole",
        "with_food=no",
    )
    assert r.code == 0, r.err
    w.at(s5.due + timedelta(minutes=10))
    r = w.run(
        "submit",
        "treatment",
        "--participant",
        pid,
        f"kit_id={kit}",
        f"time={s5.due.isoformat()}",
        "dose_mg=400",
        "preparation=opened",
        "with_food=yes",
    )
    assert r.code == 0, r.err
    # a rule of the form: a dose not given has no amount
    r = w.run(
        "submit",
        "treatment",
        "--participant",
        pid,
        f"kit_id={kit}",
        f"time={w.now.isoformat()}",
        "not_given=yes",
        "not_given_reason=refused",
        "dose_mg=600",
    )
    assert r.code == 1 and "not given has no amount" in r.err

    # another participant may not be given this participant's bottle
    second = w.consent()
    assert w.screen(second).code == 0
    assert (
        w.run("submit", "enrollment", "--participant", second, f"date={w.now.date().isoformat()}").code == 0
    )
    assert w.run("randomize", second).code == 0
    r = _tablets(w, second, kit, w.now)
    assert r.code == 1 and "never given to two participants" in r.err, r.err

    # two days pass without a record: those doses are missed
    w.at(s5.due + timedelta(days=2))
    r = w.run("participant", "show", pid, "--json", user="auditor")
    shown = json.loads(r.out)
    # blinded: the kit, never an arm or a product (the schedule is the one every arm shares)
    assert (shown["arm"], shown["kit"]) == (None, kit)
    from wardcrf.workflow.amendments import VersionState
    from wardcrf.workflow.status import ParticipantSummary, Worklist

    # the summary, then what `show` adds: the governing version and each amendment (issue #16)
    versions = {k: shown[k] for k in ("protocol", "amendments")}
    assert_shape({k: v for k, v in shown.items() if k not in ("sdv", "amendments")}, ParticipantSummary)
    assert_shape(versions, VersionState)
    assert "tecovirimat" not in r.out.lower() and "placebo" not in r.out.lower(), r.out
    by_number = {a["number"]: a for a in shown["administrations"]}
    assert [by_number[s.number]["state"] for s in (s1, s2, s3, s4, s5)] == [
        "given",
        "given",
        "not given",
        "given",
        "given",
    ]
    assert by_number[s2.number]["timing"] == "late"
    named = {(d["code"], d.get("number")) for d in shown["deviations"]}
    assert ("late_dose", s2.number) in named and ("missed_dose", s3.number) in named
    assert ("wrong_dose", s5.number) in named and ("without_food", None) in named
    assert ("missed_dose", slots[slots.index(s5) + 1].number) in named
    assert shown["doses_planned"] == 28 and shown["doses_given"] == 4

    # an amended screening makes them ineligible after enrollment: they stay enrolled, the gate
    # `still_eligible` holds the next dose with the protocol's words, and a dose is refused
    r = w.run("amend", screened.out.strip(), "midazolam_planned=yes", "--reason", "midazolam now planned")
    assert r.code == 0, r.err
    shown = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    assert shown["status"] == "enrolled, no longer eligible" and shown["failed_criteria"] == ["midaz"]
    assert (shown["next_dose"]["state"], shown["next_dose"]["hold"]) == ("held", "no longer eligible: midaz")
    worklist = json.loads(w.run("today", "--json").out)
    assert_shape(worklist, Worklist)  # a held item carries its hold (issue #16)
    assert [i["hold"] for i in worklist["items"] if i["participant"] == pid and "hold" in i] == [
        "no longer eligible: midaz"
    ]
    nxt = slots[[s.number for s in slots].index(shown["next_dose"]["dose"])]
    r = _tablets(w, pid, kit, max(nxt.opens, w.now - timedelta(minutes=1)))
    assert r.code == 1 and "no longer meets the criteria (failed: midaz)" in r.err, r.err

    # an AE, the exports with the model, the audit
    r = w.run(
        "submit",
        "ae",
        "--participant",
        pid,
        "term=Headache",
        f"onset={w.now.date().isoformat()}",
        "grade=1",
        "serious=no",
        "causality=not_related",
        "outcome=recovered",
        f"first_known={w.now.date().isoformat()}",
    )
    assert r.code == 0, r.err
    out = w.root / "exports"
    r = w.run("export", "sdtm", "--out", str(out / "sdtm"), "--check", user="auditor")
    assert r.code == 0, r.out  # the conformance rules pass
    r = w.run("export", "odm", "--out", str(out / "odm.xml"), user="auditor")
    assert r.code == 0, r.err
    import importlib.resources

    import xmlschema

    xsd = importlib.resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    assert list(xmlschema.XMLSchema(str(xsd)).iter_errors(str(out / "odm.xml"))) == []
    dm = json.loads((out / "sdtm" / "dm.json").read_text("utf-8"))
    cols = [c["name"] for c in dm["columns"]]
    rows = {r[cols.index("SUBJID")]: dict(zip(cols, r, strict=True)) for r in dm["rows"]}
    # the endpoints on a blinded ward: nobody is split by arm, and the report says why
    r = w.run("report", "endpoints", "--format", "json", user="auditor")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["blinded"] is True
    for e in report["endpoints"]:  # one group of every participant, nothing compared
        assert (list(e["arms"]), e["comparisons"], e["not_assigned"]) == (["all"], [], 0), e["code"]
    assert (
        report["endpoints"][0]["arms"]["all"]["n"] + report["endpoints"][0]["arms"]["all"]["no_follow_up"]
        == report["participants"]
    )
    r = w.run("report", "endpoints", user="auditor")
    assert r.code == 0, r.err
    text = r.out
    assert "no endpoint is split by arm" in text and "All participants: " in text
    for word in ("TECOVIRIMAT", "PLACEBO", " vs ", "Not assigned", "None", "censored_before_day"):
        assert word not in text, (word, text)
    assert text.count("All participants: ") == len(report["endpoints"])
    assert [x for x in text.splitlines() if x.startswith("All participants: ")] == [
        "All participants: 0 followed, 0 with the event, 0 censored; no follow-up: 2;"
        " median not estimable: nobody followed yet",
        # read at day 15: before it no participant is evaluable (the PCR is not due), never "0 of 2"
        "All participants: 0 of 0 evaluable at day 15, not estimable: no participant evaluable at day 15 yet;"
        " outcome not known: 0; not yet evaluable (day 15 not over): 2",
        "All participants: dead by day 58: 0 of 0 evaluable, not estimable: no participant evaluable at day 58"
        " yet; censored alive before day 58: 2; no follow-up: 0; Kaplan–Meier 1 − S at day 58: not estimable:"
        " nobody followed to day 58 yet",
    ]
    r = w.run("report", "outcomes", user="auditor")  # the outcomes report reads the same: one group, no arm
    assert r.code == 0, r.err
    assert (
        "| all participants | 0 of 0 | — | — | 2 | 0 | not estimable: nobody followed to day 58 yet |"
        in r.out
    )
    for word in (
        "| TECOVIRIMAT |",
        "| PLACEBO |",
        "Between arms",
        "Log-rank test across every arm",
        "Not assigned",
    ):
        assert word not in r.out, (word, r.out)
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.out + r.err
    # the ward's bundles reach the trial's hub, which reads the records with the same format-2 version
    results = _to_the_hub(w)
    assert results and all(getattr(x, "ok", False) for x in results), results
    assert w.hub is not None
    hs = open_(w.hub, "admin")
    try:
        at_hub = hs.store.scalar(
            "SELECT count(*) FROM records WHERE form = 'treatment' AND subject = ?", (f"participant:{pid}",)
        )
    finally:
        hs.close()
    assert at_hub == 5
    shown_dm = json.dumps(rows[pid])
    assert "TECOVIRIMAT" not in shown_dm and "PLACEBO" not in shown_dm  # still blinded
    assert rows[pid]["ARMCD"] == "BLINDED"
    ex = json.loads((out / "sdtm" / "ex.json").read_text("utf-8"))
    cols = [c["name"] for c in ex["columns"]]
    mine = [
        dict(zip(cols, r, strict=True)) for r in ex["rows"] if r[cols.index("USUBJID")] == f"PALM007-{pid}"
    ]
    assert len(mine) == 4  # the doses given; the one not given is not an EX row
    assert {(r["EXTRT"], r["EXROUTE"], r["EXDOSU"]) for r in mine} == {
        ("tecovirimat or placebo", "ORAL", "mg")
    }
    assert sorted(r["EXDOSE"] for r in mine) == [400, 600, 600, 600]
    r = w.run("audit", "verify", "--json", user="auditor")
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out
    # a lesion assessment, exported again: its counts are RS
    r = w.run(
        "submit",
        "lesions",
        "--participant",
        pid,
        f"date={w.now.date().isoformat()}",
        "total=40",
        "active=12",
        "mucosal_active=no",
    )
    assert r.code == 0, r.err
    r = w.run("export", "sdtm", "--out", str(out / "sdtm-lesions"), "--check", user="auditor")
    assert r.code == 0, r.out
    # the lesion counts are RS: the form declares RSTESTCD tests (a domain reads no form by its name)
    rs = json.loads((out / "sdtm-lesions" / "rs.json").read_text("utf-8"))
    rs_cols = [c["name"] for c in rs["columns"]]
    lesions = {
        row["RSTESTCD"]: row
        for row in (dict(zip(rs_cols, r, strict=True)) for r in rs["rows"])
        if row["USUBJID"] == f"PALM007-{pid}"
    }
    assert set(lesions) == {"LESTOT", "LESACT", "LESMUC", "LESRES"}
    assert lesions["LESTOT"]["RSORRES"] == "40" and lesions["LESTOT"]["RSCAT"] == "MPOX LESION ASSESSMENT"
    assert lesions["LESTOT"]["RSDTC"] == w.now.date().isoformat()


def test_palm_the_engines_rules_accept_and_refuse_each_in_one_line(
    palm: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each declaration the engine runs on a PALM ward, refused (one line, nothing saved) and accepted."""
    w = palm

    def one_line(r) -> str:
        assert r.code == 1, r.out
        assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
        return r.err

    def count(form: str) -> int:
        s = w.site().unlock("auditor", PASSWORD)
        try:
            return int(s.store.scalar("SELECT count(*) FROM records WHERE form = ?", (form,)) or 0)
        finally:
            s.close()

    pid = w.consent()
    # unique = []: one screening per participant
    assert w.screen(pid).code == 0
    assert "already has a screening record" in one_line(w.screen(pid))
    assert count("screening") == 1
    # enrollment not before the screening date; then accepted; then once
    day = w.now.date()
    err = one_line(w.run("submit", "enrollment", "--participant", pid, f"date={day - timedelta(days=1)}"))
    assert "before the screening date" in err
    # a DSMG "stop" holds enrollment (gate dsmb_hold, kind dsmg_hold); a later "continue" releases it
    r = w.run(
        "submit",
        "dsmg_decision",
        "--participant",
        pid,
        "decision=stop",
        "rationale=interim review",
        user="dsmg",
    )
    assert r.code == 0, r.err
    assert "DSMG recorded 'stop'" in one_line(
        w.run("submit", "enrollment", "--participant", pid, f"date={day.isoformat()}")
    )
    assert "DSMG recorded 'stop'" in one_line(w.run("randomize", pid, "--stratum", "ct_np=HIGH"))
    r = w.run(
        "submit", "dsmg_decision", "--participant", pid, "decision=continue", "rationale=resume", user="dsmg"
    )
    assert r.code == 0, r.err
    assert w.run("submit", "enrollment", "--participant", pid, f"date={day.isoformat()}").code == 0
    assert "already has an enrollment record" in one_line(
        w.run("submit", "enrollment", "--participant", pid, f"date={day}")
    )
    # a rule of the form (diastolic below systolic): refused, then accepted
    err = one_line(
        w.run(
            "submit",
            "vitals",
            "--participant",
            pid,
            "temp=37",
            "pulse=80",
            "sysbp=95",
            "diabp=100",
            f"time={w.now.isoformat()}",
        )
    )
    assert "100 mmHg is not below the systolic 95 mmHg" in err
    assert (
        w.run(
            "submit",
            "vitals",
            "--participant",
            pid,
            "temp=37",
            "pulse=80",
            "sysbp=120",
            "diabp=80",
            f"time={w.now.isoformat()}",
        ).code
        == 0
    )
    # applies_when: a field that does not apply is refused; required_when: one that is needed
    err = one_line(
        w.run(
            "submit",
            "vitals",
            "--participant",
            pid,
            "timepoint=daily",
            "infusion=1",
            "temp=37",
            "pulse=80",
            f"time={w.now.isoformat()}",
        )
    )
    assert "infusion" in err and "does not apply" in err
    err = one_line(
        w.run(
            "submit",
            "vitals",
            "--participant",
            pid,
            "timepoint=pre_infusion",
            "temp=37",
            "pulse=80",
            f"time={w.now.isoformat()}",
        )
    )
    assert "infusion" in err and "required when" in err

    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    arm = r.out.split("randomized: arm ", 1)[1].split()[0]
    # a dose assessment once per administration; an `after` one only for an administration given
    t = w.now + timedelta(minutes=30)
    w.at(t + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = _vitals(w, pid, "pre_infusion", 1, t + timedelta(minutes=5))  # typed after the infusion's start
    assert r.code == 0, r.err
    pre_event = r.out.strip()
    assert "already recorded" in one_line(_vitals(w, pid, "pre_infusion", 1, t - timedelta(minutes=10)))
    assert "not recorded as given" in one_line(_vitals(w, pid, "post_infusion", 1, t))
    # the custody gate: a vial the cold chain never received is refused; a ready one is accepted
    err = one_line(_infusion(w, pid, "VIAL-0404", t, "3100"))
    assert "custody gate" in err or "after the start" in err
    assert count("infusion") == 0
    ready_kit_on(w.site(), "VIAL-0101", t.isoformat(), w.root, _product(arm))
    # vitals "before" the infusion taken after its start are refused; corrected by an amendment, accepted
    assert "after the start" in one_line(_infusion(w, pid, "VIAL-0101", t, "3100"))
    r = w.run(
        "amend", pre_event, f"time={(t - timedelta(minutes=20)).isoformat()}", "--reason", "typo in the hour"
    )
    assert r.code == 0, r.err
    r = _infusion(w, pid, "VIAL-0101", t, "3100")
    assert r.code == 0, r.err
    # vitals "after" the infusion may not precede its end (start + 2 h)
    assert "before administration 1 ended" in one_line(
        _vitals(w, pid, "post_infusion", 1, t + timedelta(hours=1))
    )
    assert _vitals(w, pid, "post_infusion", 1, t + timedelta(hours=2, minutes=10)).code == 0
    # a second infusion the same day: one a day (per_day), or no slot at all for a single infusion
    w.at(t + timedelta(hours=5))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(
        w.site(), "VIAL-0102", (t + timedelta(hours=2, minutes=40)).isoformat(), w.root, _product(arm)
    )
    assert _vitals(w, pid, "pre_infusion", 2, t + timedelta(hours=2, minutes=20)).code == 0
    err = one_line(_infusion(w, pid, "VIAL-0102", t + timedelta(hours=2, minutes=40), "3100"))
    assert ("the protocol allows 1 a day" in err) if arm in ("ZMAPP", "RDV") else ("takes a record" in err), (
        arm,
        err,
    )
    # the AE's link names an administration given
    assert "has not been recorded as given" in one_line(
        w.run(
            "submit",
            "ae",
            "--participant",
            pid,
            "term=Rash",
            "infusion=2",
            f"onset={day}",
            "grade=1",
            "serious=no",
            "causality=not_related",
            "outcome=recovered",
            f"first_known={day}",
        )
    )
    audit = w.run("audit", "verify", "--json", user="auditor")
    assert audit.code == 0 and json.loads(audit.out)["ok"] is True, audit.out


VARIANT = (
    model.shipped_source("palm.toml")
    .replace(
        "[forms.screening.fields.eligible]",
        """[forms.screening.fields.onset_days]
type = "integer"
unit = "days"
computed = true
compute = "days(date - symptom_onset)"
label = "Days from symptom onset to screening"

[forms.screening.fields.eligible]""",
        1,
    )
    .replace(
        "[[rules]]",
        """[[rules]]
code = "late_presenter"
on = "screening"
check = "symptom_onset >= date - 14d"
field = "symptom_onset"
severity = "confirm"
message = "symptoms began {days(date - symptom_onset)} days before screening"

[[rules]]
code = "fever_40"
on = "vitals"
check = "temp < 40"
field = "temp"
severity = "deviation"
message = "temperature {temp} C at or above 40 C"

[[rules]]""",
        1,
    )
    .replace(
        'sae_clock = { fatal_or_life_threatening = "7d", other = "15d" }',
        'sae_clock = { fatal_or_life_threatening = "7d", other = "10d" }',
        1,
    )
)


def test_a_format_2_compute_and_a_confirm_rule_on_a_ward(cli, tmp_path: Path, monkeypatch) -> None:
    """`compute` fills a field from the record; a `confirm` rule saves only with --confirm --reason."""
    path = tmp_path / "palm-variant.toml"
    path.write_text(VARIANT, "utf-8")
    w = Ward(cli, tmp_path, "palm-variant")
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = w.cli(
        "init",
        "--site",
        "KIN02",
        "--device",
        "l2",
        "--admin",
        "admin",
        "--zone",
        "Africa/Kinshasa",
        "--protocol",
        str(path),
        env=w.env(),
    )
    assert r.code == 0, r.err
    s = w.site().unlock("admin", PASSWORD)
    try:
        for user, role in (
            ("clinician", "clinician"),
            ("investigator", "investigator"),
            ("auditor", "auditor"),
        ):
            users.add_user(s, user, f"{user.title()} User", role, PASSWORD)
    finally:
        s.close()
    pid = w.consent()
    late = str(w.now.date() - timedelta(days=20))
    r = w.screen(pid, symptom_onset=late)
    assert r.code == 1 and "symptoms began 20 days before screening" in r.err and "--confirm" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = w.run(
        "submit",
        "screening",
        "--participant",
        pid,
        "--confirm",
        "--reason",
        "referred late",
        *(
            f"{k}={v}"
            for k, v in {
                "date": w.now.date().isoformat(),
                "age": "34",
                "sex": "F",
                "pregnant": "no",
                "weight": "62",
                "symptom_onset": late,
                "ebov_pcr_positive": "yes",
                "ct_np": "20",
                "prior_ebov_therapeutic": "no",
            }.items()
        ),
    )
    assert r.code == 0, r.err
    other = w.consent()
    assert w.screen(other, symptom_onset=str(w.now.date() - timedelta(days=3))).code == 0
    s = w.site().unlock("auditor", PASSWORD)
    try:
        got = {
            subject: json.loads(data)["onset_days"]
            for subject, data in s.store.execute("SELECT subject, data FROM records WHERE form = 'screening'")
        }
    finally:
        s.close()
    assert got == {
        f"participant:{pid}": {"value": 20, "unit": "days"},
        f"participant:{other}": {"value": 3, "unit": "days"},
    }
    # a rule of severity `deviation` saves the record and lists the deviation
    r = w.run(
        "submit", "vitals", "--participant", other, "temp=40.2", "pulse=110", f"time={w.now.isoformat()}"
    )
    assert r.code == 0, r.err
    shown = json.loads(w.run("participant", "show", other, "--json", user="auditor").out)
    assert {
        "kind": "temperature 40.2 C at or above 40 C",
        "code": "fever_40",
        "event": r.out.strip(),
    } in shown["deviations"]
    # [safety] sae_clock: this file's 10 days for a serious event that is not fatal or life-threatening
    day = w.now.date()
    r = w.run(
        "submit",
        "ae",
        "--participant",
        other,
        "term=Hypotension",
        f"onset={day}",
        "grade=3",
        "serious=yes",
        "hospitalization=yes",
        "causality=not_related",
        "outcome=recovering",
        f"first_known={day}",
    )
    assert r.code == 0, r.err
    s = w.site().unlock("auditor", PASSWORD)
    try:
        due = s.store.scalar("SELECT report_due FROM adverse_events WHERE participant = ?", (other,))
    finally:
        s.close()
    assert due == str(day + timedelta(days=10))


def test_an_eligibility_form_of_another_name_projects_the_participant(
    cli, tmp_path: Path, monkeypatch
) -> None:
    """`[eligibility] form` is the protocol's to name: PALM with its screening form called `eligibility_check`."""
    source = model.shipped_source("palm.toml").replace("screening", "eligibility_check")
    path = tmp_path / "palm-renamed.toml"
    path.write_text(source, "utf-8")
    w = Ward(cli, tmp_path, "palm-renamed")
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = w.cli(
        "init",
        "--site",
        "KIN03",
        "--device",
        "l3",
        "--admin",
        "admin",
        "--zone",
        "Africa/Kinshasa",
        "--protocol",
        str(path),
        env=w.env(),
    )
    assert r.code == 0, r.err
    s = w.site().unlock("admin", PASSWORD)
    try:
        for user, role in (
            ("clinician", "clinician"),
            ("investigator", "investigator"),
            ("auditor", "auditor"),
        ):
            users.add_user(s, user, f"{user.title()} User", role, PASSWORD)
    finally:
        s.close()
    day = w.now.date().isoformat()
    facts = ["age=34", "sex=F", "pregnant=no", "weight=62", f"symptom_onset={day}", "ct_np=20"]
    ok, failing = w.consent(), w.consent()
    for pid, pcr in ((ok, "yes"), (failing, "no")):
        r = w.run(
            "submit",
            "eligibility_check",
            "--participant",
            pid,
            f"date={day}",
            *facts,
            f"ebov_pcr_positive={pcr}",
            "prior_ebov_therapeutic=no",
        )
        assert r.code == 0, r.err
    shown = json.loads(w.run("participant", "show", failing, "--json", user="auditor").out)
    assert (shown["status"], shown["failed_criteria"]) == ("screen failure", ["pcr"])
    shown = json.loads(w.run("participant", "show", ok, "--json", user="auditor").out)
    assert (shown["status"], shown["eligible"]) == ("eligible, not enrolled", True)
    assert w.run("submit", "enrollment", "--participant", ok, f"date={day}").code == 0
    r = w.run("submit", "enrollment", "--participant", failing, f"date={day}")
    assert r.code == 1 and "screen failure" in r.err
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.out + r.err
    # SDTM reads the eligibility record the protocol names: DM's screen failure with its sex and age, DS's
    # SCREEN FAILURE with the failed criterion
    out = tmp_path / "sdtm"
    r = w.run("export", "sdtm", "--out", str(out), user="auditor")  # nobody allocated: no study start yet
    assert r.code == 0, r.out + r.err

    def rows(name: str) -> list[dict[str, object]]:
        d = json.loads((out / f"{name}.json").read_text("utf-8"))
        cols = [c["name"] for c in d["columns"]]
        return [dict(zip(cols, row, strict=True)) for row in d["rows"]]

    dm = {r["SUBJID"]: r for r in rows("dm")}
    assert (dm[failing]["ARMNRS"], dm[failing]["SEX"], dm[failing]["AGE"]) == ("SCREEN FAILURE", "F", 34)
    assert (dm[ok]["ARMNRS"], dm[ok]["SEX"]) == ("NOT ASSIGNED", "F")
    ds = [r for r in rows("ds") if r["USUBJID"] == f"PALM-{failing}" and r["DSDECOD"] == "SCREEN FAILURE"]
    assert len(ds) == 1 and "PCR" in str(ds[0]["DSTERM"]).upper(), ds


def test_report_endpoints_refuses_a_format_1_site_and_a_role_without_export_in_one_line(
    cli, tmp_path: Path, monkeypatch
) -> None:
    from format1_stored import stored_before, unrunnable

    # the active version: a format-1 MEXCOVID stored before the engine ran format 1, which it cannot run
    stored_before(cli, tmp_path, monkeypatch, unrunnable("1.5"), "old.toml")
    r = cli("report", "endpoints", "--format", "json", user="auditor")
    assert r.code == 1 and "format-1 protocol" in r.err and "report outcomes" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = cli("report", "endpoints", user="clinician")
    assert r.code == 1 and "role clinician may not" in r.err and len(r.err.strip().splitlines()) == 1


def test_a_dose_assessment_outside_its_window_is_a_deviation(cli, tmp_path: Path, monkeypatch) -> None:
    """`within` of a dose assessment, with a deviation of kind `assessment_window` declared (PALM's vitals
    within 60 min of the infusion): vitals 90 min before the start and 90 min after the end are saved and
    named, each once (the PALM tests above take them inside the hour, and this file's deviation is not
    declared there)."""
    source = model.shipped_source("palm.toml").replace(
        '[[deviations]]\ncode = "early_infusion"',
        '[[deviations]]\ncode = "vitals_window"\nkind = "assessment_window"\nlabel = "vitals outside their window"'
        '\n\n[[deviations]]\ncode = "early_infusion"',
        1,
    )
    assert "vitals_window" in source
    w = _ward(cli, tmp_path, monkeypatch, "palm", source=source)
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date()}").code == 0
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0
    arm = r.out.split("randomized: arm ", 1)[1].split()[0]
    t = w.now + timedelta(hours=2)
    w.at(t + timedelta(hours=5))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0201", t.isoformat(), w.root, _product(arm))
    assert _vitals(w, pid, "pre_infusion", 1, t - timedelta(minutes=90)).code == 0
    r = _infusion(w, pid, "VIAL-0201", t, "3100")
    assert r.code == 0, r.err
    late = _vitals(w, pid, "post_infusion", 1, t + timedelta(hours=3, minutes=30))
    assert late.code == 0, late.err
    shown = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)
    # a format-2 summary is the participant screen's ParticipantSummary all the way down: its
    # administrations, next dose and the engine's deviations (code, number, detail) (issue #16)
    from wardcrf.workflow.amendments import VersionState
    from wardcrf.workflow.status import ParticipantSummary

    assert_shape({k: v for k, v in shown.items() if k not in ("sdv", "amendments")}, ParticipantSummary)
    assert_shape({k: shown[k] for k in ("protocol", "amendments")}, VersionState)
    assert shown["administrations"] and shown["cumulative_dose"]
    windows = [d for d in shown["deviations"] if d["code"] == "vitals_window"]
    assert [(d["number"], d["detail"]) for d in windows] == [
        (1, "vitals before infusion 1 h 30 min before the administration (within 1 h)"),
        (1, "vitals after infusion 1 h 30 min after the administration (within 1 h)"),
    ]
    assert late.out.strip() in {d["event"] for d in windows}


def test_the_dsmg_form_and_its_codes_are_the_protocols(cli, tmp_path: Path, monkeypatch) -> None:
    """`[dsmg]` names the DSMG's form, its field and the code of each decision: PALM with a `dsmb_review`
    form whose stop is coded `halt` holds enrollment until a later `continue`."""
    source = (
        model.shipped_source("palm.toml")
        .replace("dsmg_decision", "dsmb_review")
        .replace('stop = "stop"', 'stop = "halt"', 1)
        .replace('{ code = "stop", label = { en = "Stop"', '{ code = "halt", label = { en = "Halt"', 1)
    )
    path = tmp_path / "palm-dsmb.toml"
    path.write_text(source, "utf-8")
    w = Ward(cli, tmp_path, "palm-dsmb")
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    r = w.cli(
        "init",
        "--site",
        "KIN04",
        "--device",
        "l4",
        "--admin",
        "admin",
        "--zone",
        "Africa/Kinshasa",
        "--protocol",
        str(path),
        env=w.env(),
    )
    assert r.code == 0, r.err
    s = w.site().unlock("admin", PASSWORD)
    try:
        for user, role in (("clinician", "clinician"), ("investigator", "investigator"), ("dsmg", "dsmg")):
            users.add_user(s, user, f"{user.title()} User", role, PASSWORD)
    finally:
        s.close()
    pid = w.consent()
    assert w.screen(pid).code == 0
    r = w.run(
        "submit", "dsmb_review", "--participant", pid, "decision=halt", "rationale=interim", user="dsmg"
    )
    assert r.code == 0, r.err
    r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date()}")
    assert r.code == 1 and "DSMG recorded 'stop'" in r.err, r.err
    r = w.run(
        "submit", "dsmb_review", "--participant", pid, "decision=continue", "rationale=go on", user="dsmg"
    )
    assert r.code == 0, r.err
    r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date()}")
    assert r.code == 0, r.err
    # the clinician may not record the DSMG's decision: its form's action is the DSMG's
    r = w.run("submit", "dsmb_review", "--participant", pid, "decision=halt", "rationale=x")
    assert r.code == 1 and "clinician" in r.err


def test_a_start_days_before_its_slot_is_refused_and_one_in_its_window_saved(
    cli, tmp_path: Path, monkeypatch
):
    """The schedule would file a start days before a slot as its early administration: `submit` refuses it
    in one line naming the infusion and its window (the rule is the engine's `_administration`, which the
    wizard's save runs too); nothing saved. ZMapp (days 1, 4, 7): infusion 1 started inside its window is
    saved on time; one started on day 2 (infusion 2 is due on day 4) is refused, as are one typed two days
    before infusion 1 and a correction moving infusion 1's start to the day before."""
    w = _ward(cli, tmp_path, monkeypatch, "palm")
    pid = None
    for _ in range(8):  # a block of at most 8 holds every arm
        pid = w.consent()
        assert w.screen(pid).code == 0
        assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date()}").code == 0
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        if r.out.split("randomized: arm ", 1)[1].split()[0] == "ZMAPP":
            break
    else:
        raise AssertionError("no ZMAPP allocation in a block of 8")
    assert pid is not None
    plan = schedule.plan(
        model.shipped("palm.toml"), {"randomization": w.now}, arm="ZMAPP", zone=str(KIN), conditions={}
    )
    s1, s2, _s3 = sorted((s for adms in plan.values() for _a, ss in adms for s in ss), key=lambda s: s.number)

    def window(s) -> str:
        return (
            f"(window {s.opens.astimezone(KIN).isoformat(timespec='minutes')} to "
            f"{s.closes.astimezone(KIN).isoformat(timespec='minutes')}): the earliest start it takes is "
            f"{s.opens.astimezone(KIN).isoformat(timespec='minutes')}"
        )

    def refused(r, start: datetime, s) -> None:
        lines = [ln for ln in r.err.splitlines() if ln.strip()]
        assert r.code == 1 and len(lines) == 1 and "Traceback" not in r.err, r.err
        assert (
            f"start: {start.isoformat(timespec='minutes')} is before ZMapp infusion {s.number} " in lines[0]
        )
        assert window(s) in lines[0], lines[0]

    def infusions() -> list[dict]:
        site = w.site().unlock("auditor", PASSWORD)
        try:
            return [
                json.loads(x[0])
                for x in site.store.execute("SELECT data FROM records WHERE form = 'infusion'")
            ]
        finally:
            site.close()

    t = max(s1.opens, w.now) + timedelta(hours=2)
    w.at(t + timedelta(hours=5))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0301", t.isoformat(), w.root)
    early = s1.opens.astimezone(KIN) - timedelta(days=2) + timedelta(hours=10)
    refused(_infusion(w, pid, "VIAL-0301", early, "3100"), early, s1)
    assert infusions() == []
    assert _vitals(w, pid, "pre_infusion", 1, t - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, "VIAL-0301", t, "3100")
    assert r.code == 0, r.err
    assert [(x["infusion_number"], x["window"]) for x in infusions()] == [(s1.number, "on_time")]
    # a correction moving the start a day before the slot is refused the same way; the record unchanged
    moved = s1.opens.astimezone(KIN) - timedelta(days=1) + timedelta(hours=10)
    r2 = w.run(
        "amend", r.out.strip().splitlines()[0], f"start={moved.isoformat()}", "--reason", "hour corrected"
    )
    refused(r2, moved, s1)
    assert [(x["infusion_number"], x["window"]) for x in infusions()] == [(s1.number, "on_time")]
    assert _vitals(w, pid, "post_infusion", 1, t + timedelta(hours=2, minutes=15)).code == 0

    # day 2: infusion 2 is due on day 4; a start now would be filed as its early administration
    t2 = t + timedelta(days=1)
    w.at(t2 + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), "VIAL-0302", t2.isoformat(), w.root)
    assert _vitals(w, pid, "pre_infusion", 2, t2 - timedelta(minutes=20)).code == 0
    refused(_infusion(w, pid, "VIAL-0302", t2, "3100"), t2.astimezone(KIN), s2)
    assert len(infusions()) == 1
