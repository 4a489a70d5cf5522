"""Issue 20's "Done when": a blinded 2:1 and an open 1:1:1:1 stratified protocol, end to end, offline.

Everything between the hub and the ward goes through the command line and
files on a stick (`sync export` / `hub import`, `hub export` / `sync import`),
never a network: the list is made at the hub, carried to the ward, taken for
enrolled participants, carried back, checked and reported at the hub, the
trial unblinded there and the statistician's export written. Enrollment
itself (consent with photographed pages and e-signatures, screening) goes
through the same services the CLI's `submit` calls, on a ward started on the
list's own trial (`trial_staff.Recorder`: PALM007's forms, PALM's).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from rand_support import PW, SEX_AND_AGE, Trial, bare_trial, blinded_two_to_one, palm_with_strata, site

from wardcrf.engine import model

__all__ = ["bare_trial", "site"]

OPEN_FOUR_BY_SEX = palm_with_strata(SEX_AND_AGE, '["site", "sex"]')
"""PALM (ZMapp, remdesivir, MAb114, REGN-EB3; 1:1:1:1) stratified by site and sex, the sex computed
from the recorded screening."""


class Stick:
    """Files carried by hand between the ward and the hub, one directory per trip."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.trips = 0

    def new(self) -> Path:
        self.trips += 1
        d = self.tmp / f"stick{self.trips}"
        d.mkdir()
        return d


def _ward_to_hub(cli, t: Trial, stick: Stick, user: str = "clinician") -> None:
    out = stick.new()
    res = cli("sync", "export", "--to", str(out), user=user)
    assert res.code == 0, res.err
    bundles = sorted(str(f) for f in out.glob("*.tar.age"))
    assert bundles, res.out
    res = cli("hub", "import", "-d", str(t.hub_site.data_dir), *bundles, user="admin")
    assert res.code == 0, res.err


def _hub_to_ward(cli, t: Trial, stick: Stick) -> None:
    out = stick.new()
    res = cli(
        "hub", "export", "-d", str(t.hub_site.data_dir), "--device", t.device, "--to", str(out), user="admin"
    )
    assert res.code == 0, res.err
    files = sorted(str(f) for f in out.iterdir() if f.suffix in (".age", ".json"))
    assert files, res.out
    res = cli("sync", "import", *files, user="clinician")
    assert res.code == 0, res.err


def _make(cli, t: Trial, protocol: Path, per_stratum: str):
    return cli(
        "hub",
        "randomization",
        "make",
        "-d",
        str(t.hub_site.data_dir),
        "--protocol",
        str(protocol),
        "--site",
        "WUH01",
        "--device",
        t.device,
        "--per-stratum",
        per_stratum,
        user="coordinator",
    )


def _enrolled(t: Trial, n: int, sexes: tuple[str, ...] = ("M",)) -> list[str]:
    """`n` participants of the ward's trial consented, screened eligible (sex by turns) and enrolled."""
    assert t.rec is not None
    return [t.rec.enrolled(sex=sexes[i % len(sexes)]) for i in range(n)]


def _hub_plain_entries(t: Trial) -> list[dict]:
    """The hub's plaintext list (opened with the hub's own identity), to compare with what happened."""
    from wardcrf import devicekeys
    from wardcrf.randomization import sealing

    hs = t.hub_session("admin")
    try:
        line = hs.store.scalar("SELECT ev.line FROM rand_lists l JOIN events ev ON ev.id = l.event_id")
        keys = devicekeys.load(hs.store, hs.ctx.device)
        return sealing.hub_record(json.loads(line)["body"], keys.age_identity)["document"]["entries"]
    finally:
        hs.close()


def _hub_report(cli, t: Trial) -> dict:
    res = cli("report", "randomization", "--json", "-d", str(t.hub_site.data_dir), user="coordinator")
    assert res.code == 0, res.err
    return json.loads(res.out)


@pytest.mark.ward("palm007")
def test_blinded_two_to_one_end_to_end_offline(cli, bare_trial: Trial, tmp_path: Path) -> None:
    t, stick = bare_trial, Stick(tmp_path)
    protocol = tmp_path / "palm007-2to1.toml"
    protocol.write_text(blinded_two_to_one().source, encoding="utf-8")
    # 1. the investigator's first sign-in on the laptop makes its unblinding key; the ward's bundle carries it
    assert _make(cli, t, protocol, "6").code == 1
    assert cli("report", "randomization", user="investigator").code == 0
    _ward_to_hub(cli, t, stick)
    # 2. the list is made at the hub and carried to the ward
    res = _make(cli, t, protocol, "6")
    assert res.code == 0, res.err
    list_sha = res.out.split("SHA-256 ")[1].split(";")[0]
    _hub_to_ward(cli, t, stick)
    # 3. enrolled participants are randomized on the ward: a kit number each, never an arm
    pids = _enrolled(t, 6)
    kits = {}
    for pid in pids:
        res = cli("randomize", pid, user="clinician")
        assert res.code == 0, res.err
        assert "TECOVIRIMAT" not in res.out and "PLACEBO" not in res.out
        kits[pid] = res.out.split("kit ")[1].split()[0]
    assert len(set(kits.values())) == 6
    # an emergency unblinding of one participant, signed and witnessed
    res = cli(
        "unblind",
        pids[2],
        "--reason",
        "sae_management",
        "--detail",
        "SAE: the team needs the arm",
        "--witness",
        "clinician2",
        user="investigator",
        env={"WARDCRF_PASSWORD_CLINICIAN2": PW},
    )
    assert res.code == 0, res.err
    unblinded_arm = "TECOVIRIMAT" if "TECOVIRIMAT" in res.out else "PLACEBO"
    # 4. back at the hub: every allocation checked against the list, none held; blinded counts only
    _ward_to_hub(cli, t, stick)
    report = _hub_report(cli, t)
    [lst] = report["lists"]
    assert lst["blinded"] and lst["ratio"] == "2:1" and lst["list_sha256"] == list_sha
    assert lst["strata"][0]["allocated"] == 6 and "by_arm" not in lst["strata"][0]
    assert report["held"] == [] and [u["participant"] for u in report["unblindings"]] == [pids[2]]
    # 5. the trial is unblinded at the hub; the statistician's export joins arms to participants
    hub = str(t.hub_site.data_dir)
    res = cli(
        "hub",
        "randomization",
        "unblind-trial",
        "-d",
        hub,
        "--protocol-id",
        "PALM007",
        "--reason",
        "database locked",
        user="admin",
    )
    assert res.code == 0, res.err
    out = tmp_path / "unblinded.csv"
    res = cli(
        "hub",
        "randomization",
        "export",
        "-d",
        hub,
        "--protocol-id",
        "PALM007",
        "--out",
        str(out),
        user="admin",
    )
    assert res.code == 0, res.err
    rows = {r["participant"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert set(rows) == set(pids) and {p: r["kit"] for p, r in rows.items()} == kits
    # the list's first six entries, in order, as the hub made it (its own sealed copy)
    first_six = [e for e in _hub_plain_entries(t) if e["position"] <= 6]
    assert [rows[p]["arm"] for p in pids] == [
        e["arm"] for e in sorted(first_six, key=lambda e: e["position"])
    ]
    assert [kits[p] for p in pids] == [e["kit"] for e in sorted(first_six, key=lambda e: e["position"])]
    assert rows[pids[2]]["arm"] == unblinded_arm
    whole = Counter(e["arm"] for e in _hub_plain_entries(t))
    assert whole["TECOVIRIMAT"] == 2 * whole["PLACEBO"]  # the list holds the ratio in whole blocks
    [lst] = _hub_report(cli, t)["lists"]
    assert not lst["blinded"] and lst["strata"][0]["by_arm"] == dict(Counter(r["arm"] for r in rows.values()))


@pytest.mark.ward("palm")
def test_open_four_arm_stratified_end_to_end_offline(cli, bare_trial: Trial, tmp_path: Path) -> None:
    t, stick = bare_trial, Stick(tmp_path)
    protocol = tmp_path / "palm-by-sex.toml"
    protocol.write_text(OPEN_FOUR_BY_SEX, encoding="utf-8")
    assert model.parse(OPEN_FOUR_BY_SEX, "palm-by-sex.toml").data["randomization"]["reveal"] == "arm"
    res = _make(cli, t, protocol, "4")  # open label: no unblinding key needed
    assert res.code == 0, res.err
    _hub_to_ward(cli, t, stick)
    pids = _enrolled(t, 8, sexes=("M", "F"))
    arms = {}
    for i, pid in enumerate(pids):
        res = cli("randomize", pid, user="clinician")  # the stratum comes from the recorded sex
        assert res.code == 0, res.err
        assert f"site=WUH01;sex={'MF'[i % 2]}" in res.out
        arms[pid] = res.out.split(": arm ")[1].split()[0]
    assert set(arms.values()) <= {"ZMAPP", "RDV", "MAB114", "REGNEB3"}
    _ward_to_hub(cli, t, stick)
    report = _hub_report(cli, t)
    [lst] = report["lists"]
    assert lst["ratio"] == "1:1:1:1" and not lst["blinded"] and report["held"] == []
    by_stratum = {s["stratum"]: s for s in lst["strata"]}
    for sex in "MF":
        s = by_stratum[f"site=WUH01;sex={sex}"]
        assert s["allocated"] == 4 and sum(s["by_arm"].values()) == 4
        # 4 per stratum in blocks of 4 (or the first half of a block of 8): never 3 of one arm
        assert max(s["by_arm"].values()) <= 2
    hub = str(t.hub_site.data_dir)
    out = tmp_path / "allocations.csv"
    res = cli(
        "hub", "randomization", "export", "-d", hub, "--protocol-id", "PALM", "--out", str(out), user="admin"
    )
    assert res.code == 0, res.err
    rows = {r["participant"]: r["arm"] for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows == arms
