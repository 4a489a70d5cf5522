"""`paired_change` endpoints on a format-2 ward (`wardcrf report endpoints`; docs/protocol.md, "[analysis]").

A PALM variant (a test protocol: no shipped format-2 version of its own
declares a paired endpoint) labels its labs with a timepoint and declares
creatinine before and after the first infusion: the values are chosen out
of the records by `[analysis.baseline]` / `[analysis.post_treatment]` (the
selection of format 1's outcomes report), compared per arm by the Wilcoxon
signed-rank test of `reports.stats` (checked against SciPy where SciPy's
exact test applies, and against the one owner with ties), through the CLI.
Refused at load: a paired endpoint on a field that is not a number, on a
form without the timepoint labelling the visit, or with a key format 1's
endpoint does not know, each `FILE:LINE` in one line.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wardcrf.engine import model

KIN = ZoneInfo("Africa/Kinshasa")
TIMEPOINT = """[forms.labs.fields.timepoint]
type = "choice"
label = "Timepoint"
choices = [
  { code = "baseline", label = "Baseline" },
  { code = "post_treatment", label = "After treatment" },
  { code = "other", label = "Other" },
]

"""
ANALYSIS = """[analysis]
ci_level = 0.95
paired_test = "wilcoxon-exact"

[analysis.baseline]
timepoint = "baseline"
relative_to = "first_dose"
days = [-2, 0]
pick = "last"

[analysis.post_treatment]
timepoint = "post_treatment"
relative_to = "first_dose"
days = [1, 14]
pick = "last"
regimen_complete = false

[[analysis.endpoints]]
code = "creat_change"
kind = "paired_change"
label = "Creatinine before and after the first infusion"
form = "labs"
field = "creat"
improves = "down"
paired_test = true

"""
DOSE = {"ZMAPP": "3100", "RDV": "200", "MAB114": "3100", "REGNEB3": "9300"}


def _source(endpoint: str = ANALYSIS, timepoint: str = TIMEPOINT) -> str:
    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")
    old = '[analysis]\nci_level = 0.95\nproportion_ci = "wilson"\ndifference_ci = "newcombe"\n\n'
    assert text.count(old) == 1 and text.count("[forms.labs.fields.creat]") == 1
    text = text.replace(old, endpoint, 1)
    return text.replace("[forms.labs.fields.creat]", timepoint + "[forms.labs.fields.creat]", 1)


def test_the_variant_declares_one_paired_endpoint_the_ward_reads() -> None:
    from wardcrf.engine import ward

    proto = ward.of(model.parse(_source(), "palm-paired.toml"))
    (ep,) = proto.analysis.endpoints
    assert (ep.form, ep.field, ep.improves, ep.timepoint_field, ep.date_field) == (
        "labs",
        "creat",
        "down",
        "timepoint",
        "date",
    )
    assert proto.analysis.windows["post_treatment"].days == (1, 14)


@pytest.mark.parametrize(
    ("endpoint", "timepoint", "problem"),
    [
        (
            ANALYSIS.replace('field = "creat"', 'field = "timepoint"'),
            TIMEPOINT,
            "endpoints are number or integer",
        ),
        (ANALYSIS, "", "needs a choice field 'timepoint'"),
        (
            ANALYSIS.replace('improves = "down"\n', 'improves = "down"\nreference = "ZMAPP"\n'),
            TIMEPOINT,
            "reference",
        ),
        (
            ANALYSIS.replace('timepoint = "post_treatment"', 'timepoint = "after"'),
            TIMEPOINT,
            "has no choice 'after'",
        ),
    ],
)
def test_a_malformed_paired_endpoint_is_refused_by_protocol_check_in_one_line(
    cli, tmp_path: Path, endpoint: str, timepoint: str, problem: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(_source(endpoint, timepoint), "utf-8")
    r = cli("protocol", "check", str(bad))
    assert r.code == 1, r.out + r.err
    line = next(x for x in r.err.splitlines() if problem in x)
    assert "bad.toml:" in line and "analysis" in line, r.err


def test_paired_change_per_arm_through_the_cli(cli, tmp_path: Path, monkeypatch) -> None:
    from scipy import stats as scipy_stats
    from test_engine_ward_cli import _infusion, _product, _vitals, _ward
    from typed_support import assert_shape
    from wf_support import ready_kit_on

    from wardcrf.reports import stats
    from wardcrf.reports.engine_endpoints import EndpointsReport

    w = _ward(cli, tmp_path, monkeypatch, "palm", source=_source())
    day1 = w.now.date()
    people: list[tuple[str, str]] = []
    for _ in range(8):  # blocks of 4 or 8: two participants per arm
        pid = w.consent()
        assert w.screen(pid).code == 0
        assert w.run("submit", "enrollment", "--participant", pid, f"date={day1.isoformat()}").code == 0
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        people.append((pid, r.out.split("randomized: arm ", 1)[1].split()[0]))
    counts = {a: sum(1 for _p, x in people if x == a) for a in DOSE}  # the list's blocks decide
    assert sum(counts.values()) == 8

    def report() -> dict:
        r = w.run("report", "endpoints", "--format", "json", user="auditor")
        assert r.code == 0, r.err
        out = json.loads(r.out)
        assert_shape(out, EndpointsReport)
        return next(e for e in out["endpoints"] if e["code"] == "creat_change")

    # no administration yet: nobody is in the analysis population, nothing is paired, nothing is tested
    got = report()
    assert {a: (x["n"], x["pairs"], x["wilcoxon"]["p"]) for a, x in got["arms"].items()} == {
        a: (counts[a], 0, None) for a in DOSE
    }
    assert all("not computed" in x["wilcoxon"]["method"] for x in got["arms"].values())

    # each participant: baseline labs, the first infusion (day 1), labs after it (day 3)
    start = w.now + timedelta(hours=2)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    for i, (pid, arm) in enumerate(people):
        kit = f"VIAL-{i + 1:04d}"
        ready_kit_on(w.site(), kit, start.isoformat(), w.root, _product(arm))
        assert _vitals(w, pid, "pre_infusion", 1, start - timedelta(minutes=20)).code == 0
        r = _infusion(w, pid, kit, start, DOSE[arm])
        assert r.code == 0, r.err
        assert _vitals(w, pid, "post_infusion", 1, start + timedelta(hours=2, minutes=15)).code == 0
    # before any value after treatment: the baselines alone pair nothing
    before: dict[str, float] = {}
    for i, (pid, _arm) in enumerate(people):
        before[pid] = 100.0 + 10 * i
        r = w.run(
            "submit",
            "labs",
            "--participant",
            pid,
            f"date={day1.isoformat()}",
            "timepoint=baseline",
            f"creat={before[pid]:g}",
        )
        assert r.code == 0, r.err
    assert {x["pairs"] for x in report()["arms"].values()} == {0}

    # after: the first arm with two participants falls by the same amount in each (tied ranks); the next
    # such arm has no value after for its second (one pair); another arm's first is sampled on day 20,
    # outside the window (left out, listed); the rest fall by 8, then rise by 30
    tied = next(a for a in DOSE if counts[a] >= 2)  # 8 participants, 4 arms: one has two at least
    single = next((a for a in DOSE if counts[a] >= 2 and a != tied), None)
    outside = next((a for a in DOSE if counts[a] >= 1 and a not in (tied, single)), None)
    w.at(w.now + timedelta(days=20))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    seen: dict[str, int] = {}
    pairs: dict[str, list[tuple[float, float]]] = {a: [] for a in DOSE}
    for pid, arm in people:
        k = seen[arm] = seen.get(arm, 0) + 1
        if arm == single and k == 2:  # no value after
            continue
        drop = 12.0 if arm == tied else (8.0 if k == 1 else -30.0)
        late = arm == outside and k == 1
        on = day1 + timedelta(days=19 if late else 2)
        r = w.run(
            "submit",
            "labs",
            "--participant",
            pid,
            f"date={on.isoformat()}",
            "timepoint=post_treatment",
            f"creat={before[pid] - drop:g}",
        )
        assert r.code == 0, r.err
        if not late:
            pairs[arm].append((before[pid], before[pid] - drop))
    got = report()
    assert got["improves"] == "down" and (got["form"], got["field"]) == ("labs", "creat")
    for arm, both in pairs.items():
        res = got["arms"][arm]
        b, a = [x for x, _ in both], [y for _, y in both]
        assert (res["n"], res["pairs"]) == (counts[arm], len(both)), arm
        mine = stats.signed_rank(b, a, test="wilcoxon-exact", zeros="wilcox").as_json()
        assert res["wilcoxon"] == mine  # the one owner of the statistics
        if b:
            middle = (
                sorted(b)[len(b) // 2]
                if len(b) % 2
                else (sorted(b)[len(b) // 2 - 1] + sorted(b)[len(b) // 2]) / 2
            )
            assert res["before"]["median"] == pytest.approx(middle)
        else:  # no pairs: nothing to describe or test
            assert (res["before"]["median"], res["wilcoxon"]["p"]) == (None, None)
        no_ties = len({abs(x - y) for x, y in both}) == len(both)
        if len(both) >= 2 and no_ties:  # no ties, no zeros: SciPy's exact test
            expected = scipy_stats.wilcoxon(a, b, method="exact").pvalue
            assert res["wilcoxon"]["p"] == pytest.approx(expected)
    assert got["arms"][tied]["wilcoxon"]["ties"] is True  # the exact distribution with tied ranks
    assert got["improved"][tied] == counts[tied]
    if single is not None:  # one pair: nothing to test against
        assert got["arms"][single]["pairs"] == counts[single] - 1
        if counts[single] == 2:
            assert got["arms"][single]["wilcoxon"]["p"] == pytest.approx(1.0)
    left_out = [x for x in got["excluded"] if x["visit"] == "post_treatment"]
    assert len(left_out) == (outside is not None)
    assert all("outside the post-treatment window" in x["reason"] for x in left_out)
    r = w.run("report", "endpoints", user="auditor")
    assert r.code == 0 and "creat_change (paired change)" in r.out, r.err
    assert ("Left out:" in r.out) == (outside is not None)
    assert f"{tied}: {counts[tied]} pairs of {counts[tied]}" in r.out
    # the outcomes report reads the same numbers (one owner): per arm, and each participant with their arm
    r = w.run("report", "outcomes", "--format", "json", user="auditor")
    assert r.code == 0, r.err
    (marker,) = json.loads(r.out)["markers"]
    for arm, res in got["arms"].items():
        assert (
            marker["arms"][arm]["wilcoxon"] == res["wilcoxon"]
            and marker["arms"][arm]["n_paired"] == res["pairs"]
        )
    assert {p["participant"]: p["arm"] for p in marker["participants"]} == {
        pid: arm for pid, arm in people if pid in {p["participant"] for p in marker["participants"]}
    }
    assert "n_paired" not in marker  # four arms: no pooled test across them


def test_a_blinded_ward_pairs_values_but_splits_no_arm(cli, tmp_path: Path, monkeypatch) -> None:
    """PALM007 (double blind) with a paired endpoint: the participant's pair is counted as not assigned, no
    arm is analysed on the ward (the hub analyses after unblinding), as for the other kinds."""
    from datetime import datetime

    from test_engine_ward_cli import _tablets, _ward
    from wf_support import ready_kit_on

    from wardcrf.engine import schedule

    text = (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm007.toml").read_text("utf-8")
    old = '[analysis]\nci_level = 0.95\nproportion_ci = "wilson"\ndifference_ci = "newcombe"\n\n'
    choice = '  { code = "baseline", label = { en = "Baseline", fr = "Inclusion" } },\n'
    assert text.count(old) == 1 and text.count(choice) == 1
    text = text.replace(old, ANALYSIS, 1).replace(
        choice, choice + '  { code = "post_treatment", label = "After treatment" },\n', 1
    )
    w = _ward(cli, tmp_path, monkeypatch, "palm007", source=text)
    pid = w.consent()
    assert w.screen(pid).code == 0
    assert w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}").code == 0
    r = w.run("randomize", pid)
    assert r.code == 0, r.err
    kit = r.out.split("randomized: kit ", 1)[1].split()[0]
    m = model.parse(text, "palm007-paired.toml")
    facts = {"screening.weight < 120": True, "screening.weight >= 120": False}
    plan = schedule.plan(
        m, {"randomization": w.now}, arm="TECOVIRIMAT", zone="Africa/Kinshasa", conditions=facts
    )
    s1 = next(
        s for adms in plan.values() for _a, ss in adms for s in ss if s.closes > w.now + timedelta(minutes=30)
    )
    t1: datetime = max(s1.opens, w.now) + timedelta(minutes=15)
    w.at(t1 + timedelta(minutes=30))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), kit, t1.isoformat(), w.root)
    assert _tablets(w, pid, kit, t1).code == 0
    day = t1.astimezone(KIN).date()
    for on, tp, value in ((day, "baseline", "90"), (day + timedelta(days=3), "post_treatment", "70")):
        w.at(max(w.now, datetime.combine(on, t1.astimezone(KIN).timetz()) + timedelta(hours=1)))
        r = w.run(
            "submit",
            "labs",
            "--participant",
            pid,
            f"date={on.isoformat()}",
            f"timepoint={tp}",
            f"creat={value}",
        )
        assert r.code == 0, r.err
    r = w.run("report", "endpoints", "--format", "json", user="auditor", WARDCRF_FAKE_NOW=w.now.isoformat())
    assert r.code == 0, r.err
    out = json.loads(r.out)
    got = next(e for e in out["endpoints"] if e["code"] == "creat_change")
    assert out["blinded"] is True and got["not_assigned"] == 1
    assert {a: (x["n"], x["pairs"]) for a, x in got["arms"].items()} == {
        "TECOVIRIMAT": (0, 0),
        "PLACEBO": (0, 0),
    }
    assert got["excluded"] == [] and set(got["improved"].values()) == {0}
    # the outcomes report on the blinded ward: the pair is listed, no arm is analysed, no table is split by arm
    r = w.run("report", "outcomes", "--format", "json", user="auditor", WARDCRF_FAKE_NOW=w.now.isoformat())
    assert r.code == 0, r.err
    data = json.loads(r.out)
    (marker,) = data["markers"]
    assert data["blinded"] is True and "by_arm" not in data["demographics"]
    assert data["demographics"]["n"] == 1 and data["demographics"]["sex"] == {"M": 1}
    assert [(p["participant"], p["arm"], p["before"], p["after"]) for p in marker["participants"]] == [
        (pid, None, 90.0, 70.0)
    ]
    assert marker["not_assigned"] == 1 and {x["n_paired"] for x in marker["arms"].values()} == {0}
    r = w.run("report", "outcomes", user="auditor", WARDCRF_FAKE_NOW=w.now.isoformat())
    assert r.code == 0 and "The trial is blinded on this ward" in r.out, r.err
