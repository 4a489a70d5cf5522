"""The randomization commands end to end: hub makes, ward randomizes and unblinds, reports (issue 20)."""

from __future__ import annotations

import json

import pytest
from rand_support import Trial, open_four_source, send_ward_bundle, site, trial

__all__ = ["site", "trial"]
pytestmark = pytest.mark.ward("palm007")  # the blinded lists are PALM007's: taken by its participants

PW = "test-password-1"


def _make(cli, t: Trial, protocol: str, per_stratum: str = "4"):
    hub_dir = str(t.hub_site.data_dir)
    return cli(
        "hub",
        "randomization",
        "make",
        "-d",
        hub_dir,
        "--protocol",
        protocol,
        "--site",
        "WUH01",
        "--device",
        t.device,
        "--per-stratum",
        per_stratum,
        user="coordinator",
    )


def test_blinded_trial_from_the_command_line(cli, trial: Trial) -> None:
    res = _make(cli, trial, "palm007", "2")
    assert res.code == 0, res.err
    assert "SHA-256 " in res.out and "next hub bundle" in res.out
    trial.deliver()
    pids = [trial.participant() for _ in range(5)]
    res = cli("randomize", pids[0], user="clinician")
    assert res.code == 0, res.err
    assert " randomized: kit K" in res.out
    assert "TECOVIRIMAT" not in res.out and "PLACEBO" not in res.out
    res = cli(
        "unblind",
        pids[0],
        "--reason",
        "sae_management",
        "--detail",
        "SAE on day 2",
        "--witness",
        "clinician2",
        user="investigator",
        env={"WARDCRF_PASSWORD_CLINICIAN2": PW},
    )
    assert res.code == 0, res.err
    assert res.out.startswith(f"UNBLINDED {pids[0]} (kit K") and (
        "TECOVIRIMAT" in res.out or "PLACEBO" in res.out
    )
    res = cli("report", "randomization", "--json", user="auditor")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["lists"][0]["blinded"] is True and "by_arm" not in data["lists"][0]["strata"][0]
    assert [u["participant"] for u in data["unblindings"]] == [pids[0]]
    # the coordinator and investigators see it in the safety report (who, why, when; not the arm)
    for role in ("coordinator", "investigator"):
        res = cli("report", "safety", "--format", "json", user=role)
        assert res.code == 0, res.err
        [u] = json.loads(res.out)["emergency_unblindings"]
        assert (u["participant"], u["reason"], u["user"], u["witness"]) == (
            pids[0],
            "sae_management",
            "investigator",
            "clinician2",
        )
        assert "arm" not in u
    res = cli("report", "safety", "--format", "md", user="coordinator")
    assert "Emergency unblindings" in res.out and pids[0] in res.out
    # the auditor may read the report, not unblind
    res = cli("unblind", pids[0], "--reason", "other", "--detail", "x", user="auditor")
    assert res.code == 1 and res.err.count("\n") == 1 and "role auditor may not unblind" in res.err


def test_an_exhausted_stratum_exits_1_in_one_line_naming_it(cli, trial: Trial) -> None:
    assert _make(cli, trial, "palm007", "1").code == 0
    trial.deliver()
    pids = [trial.participant() for _ in range(6)]
    codes = [cli("randomize", p, user="clinician") for p in pids]
    refused = [r for r in codes if r.code != 0]
    assert refused, "a one-entry-per-stratum list (whole blocks of 2 or 4) runs out within six participants"
    r = refused[0]
    assert r.code == 1 and r.err.count("\n") == 1
    assert r.err.startswith("wardcrf: error: stratum site=WUH01 is exhausted")
    send_ward_bundle(trial)
    hs = trial.hub_session()
    try:
        assert hs.store.scalar("SELECT COUNT(*) FROM rand_exhausted") >= 1
    finally:
        hs.close()


@pytest.mark.ward("palm-levels")  # PALM, randomized before screening ends
def test_open_label_stratified_trial_shows_the_arm_and_counts_per_arm(cli, trial: Trial) -> None:
    assert _make(cli, trial, "palm", "4").code == 0
    trial.deliver()
    assert trial.rec is not None
    pid = trial.rec.consent()
    # Shipped PALM computes the Ct level from screening.ct_np, not recorded yet for this participant:
    # stating it is no substitute (the factor is not asked).
    res = cli("randomize", pid, "--stratum", "ct_np=HIGH", user="clinician")
    assert res.code == 1 and res.err.count("\n") == 1, res.err
    assert (
        "stratum factor ct_np cannot be computed" in res.err and "screening.ct_np is not recorded" in res.err
    )
    asked = trial.tmp / "palm-ct-asked.toml"
    asked.write_text(open_four_source(), encoding="utf-8")
    assert _make(cli, trial, str(asked), "4").code == 0
    trial.deliver()
    for hostile in ("site=WUH02\x1b[31m", "ct_np=HIGH\x07", "ct\x1b_np=HIGH", "ct_np=" + "H" * 5000):
        res = cli("randomize", pid, "--stratum", hostile, user="clinician")
        assert res.code in (1, 2) and res.err.count("\n") == 1, res.err
        assert "\x1b" not in res.err and "\x07" not in res.err and len(res.err) < 1000, res.err
    res = cli("randomize", pid, "--stratum", "ct_np=HIGH", user="clinician")
    assert res.code == 0, res.err
    arm = res.out.split(": arm ")[1].split()[0]
    assert arm in ("ZMAPP", "RDV", "MAB114", "REGNEB3")
    res = cli("report", "randomization", user="clinician")
    assert res.code == 0 and "site=WUH01;ct_np=HIGH: 1 of" in res.out and f"{arm} 1" in res.out


def test_bad_command_line_input_is_one_line(cli, trial: Trial) -> None:
    res = _make(cli, trial, "no-such-protocol")
    assert res.code == 2 and res.err.count("\n") == 1 and "neither a file nor a shipped protocol" in res.err
    res = _make(cli, trial, "mexcovid")
    assert res.code == 1 and res.err.count("\n") == 1 and "no [randomization] table" in res.err
    for bad in ("ct_np", "=HIGH", "ct_np="):
        res = cli("randomize", "WUH01-001", "--stratum", bad, user="clinician")
        assert res.code == 2 and res.err.count("\n") == 1 and "FACTOR=LEVEL" in res.err, bad
    res = cli("randomize", "WUH01-999", user="clinician")
    assert res.code == 1 and "unknown participant WUH01-999" in res.err and res.err.count("\n") == 1
    res = cli("randomize", trial.participant(), user="clinician")
    assert res.code == 1 and "holds no allocation list" in res.err and res.err.count("\n") == 1
    res = cli("randomize", "\x1b[31mWUH01", user="clinician")
    assert res.code in (1, 2) and res.err.count("\n") == 1 and "Traceback" not in res.err


def test_the_unblinded_export_needs_the_trial_unblinded_an_admin_and_the_hub(
    cli, trial: Trial, tmp_path
) -> None:
    import csv
    import hashlib

    assert _make(cli, trial, "palm007", "2").code == 0
    trial.deliver()
    pids = [trial.participant() for _ in range(2)]
    for pid in pids:
        assert cli("randomize", pid, user="clinician").code == 0
    send_ward_bundle(trial)
    hub_dir = str(trial.hub_site.data_dir)
    out = tmp_path / "unblinded.csv"
    export = ("hub", "randomization", "export", "-d", hub_dir, "--protocol-id", "PALM007", "--out", str(out))
    res = cli(*export, user="admin")
    assert res.code == 1 and "still blinded" in res.err and not out.exists()
    res = cli(*export, user="coordinator")
    assert res.code == 1 and "role coordinator may not" in res.err
    unblind = ("hub", "randomization", "unblind-trial", "-d", hub_dir, "--protocol-id", "PALM007")
    assert cli(*unblind, "--reason", "  ", user="admin").code == 1
    assert cli(*unblind, "--reason", "database locked", user="admin").code == 0
    res = cli(*export, user="admin")
    assert res.code == 0, res.err
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["participant"] for r in rows) == sorted(pids)
    assert {r["arm"] for r in rows} <= {"TECOVIRIMAT", "PLACEBO"} and all(
        r["kit"].startswith("K") for r in rows
    )
    hs = trial.hub_session("admin")
    try:
        logged = json.loads(hs.store.scalar("SELECT line FROM events WHERE type = 'randomization.exported'"))
        assert logged["body"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert logged["body"]["rows"] == 2 and logged["user"] == "admin"
    finally:
        hs.close()
    res = cli("report", "randomization", "-d", hub_dir, user="coordinator")
    assert res.code == 0 and "unblinded at the hub" in res.out
    assert "TECOVIRIMAT" in res.out  # counts per arm, now that the trial is unblinded
    # the ward's report never shows a blinded arm
    res = cli("report", "randomization", user="clinician")
    assert res.code == 0 and "arms sealed" in res.out and "TECOVIRIMAT" not in res.out


def test_the_dsmg_reads_the_randomization_report_with_its_unblindings(cli, trial: Trial) -> None:
    assert _make(cli, trial, "palm007", "2").code == 0
    trial.deliver()
    pid = trial.participant()
    assert cli("randomize", pid, user="clinician").code == 0
    assert (
        cli(
            "unblind",
            pid,
            "--reason",
            "overdose",
            "--detail",
            "two doses taken",
            "--witness",
            "clinician2",
            user="investigator",
            env={"WARDCRF_PASSWORD_CLINICIAN2": PW},
        ).code
        == 0
    )
    res = cli("report", "randomization", user="dsmg")
    assert res.code == 0 and f"EMERGENCY UNBLINDING {pid}" in res.out and "reason overdose" in res.out


def test_no_ward_export_or_log_reveals_a_blinded_participants_arm(cli, trial: Trial, tmp_path) -> None:
    """Issue 20's "never": no ward export and no ward role's `log` ties a participant or kit to an arm.

    The protocol's arms are public (TA, the ODM metadata, a blinded EXTRT
    naming every arm's product): what must never appear is one arm beside a
    participant or a kit. So every line that names an allocated participant
    or kit names either no arm or all of them.
    """
    assert _make(cli, trial, "palm007", "4").code == 0  # at least 4 entries: 3 participants fit
    trial.deliver()
    pids = [trial.participant() for _ in range(3)]
    kits = []
    for pid in pids:
        res = cli("randomize", pid, user="clinician")
        assert res.code == 0, res.err
        kits.append(res.out.split(" randomized: kit ", 1)[1].split()[0].strip(".,;:()"))
    out = tmp_path / "exports"
    for args in (
        ("csv", "--out", str(out / "csv")),
        ("odm", "--out", str(out / "odm.xml")),
        ("sdtm", "--out", str(out / "sdtm")),
    ):
        res = cli("export", *args, user="coordinator")
        assert res.code == 0, res.err
    texts = {
        str(f.relative_to(out)): f.read_text("utf-8")
        for f in out.rglob("*")
        if f.suffix in (".csv", ".xml", ".json")
    }
    assert any(
        "sdtm/" in name and name.endswith(".json") for name in texts
    )  # Dataset-JSON, the XPT's content
    for role in ("clinician", "pharmacist", "coordinator", "auditor", "investigator", "dsmg"):
        res = cli("log", "--json", user=role)
        assert res.code == 0, (role, res.err)
        texts[f"log --json as {role}"] = res.out
    named = 0
    for name, text in texts.items():
        for line in text.splitlines():
            if any(p in line for p in pids) or any(k in line for k in kits):
                named += 1
                up = line.upper()
                assert ("TECOVIRIMAT" in up) == ("PLACEBO" in up), (name, line[:300])
    assert named > 0  # the search saw the participants
