"""`wardcrf report outcomes` on a format-2 ward: the report from the protocol's declarations (issue 17).

A PALM variant (four arms) declares the participants table
(`[[analysis.characteristics]]`), a proportion endpoint beside PALM's
mortality by day 28 and time to death, and vital signs across the infusions
(`[[analysis.series]]`); its labels carry markup. Through the CLI: before
anyone is enrolled (every endpoint with no data yet: nothing invented, no
crash), then with eight participants randomized, each given the first
infusion with vitals before and after, one dying: every declared endpoint
per arm, the very numbers of `wardcrf report endpoints` (one owner), the
labels escaped in the HTML. Refused: at load, a characteristic or series
that names what does not exist (one line, `FILE:LINE`), hostile values; at
report time, a characteristic that gives a date, and a role that may not
report the trial's data. A protocol that declares no endpoint gets a report
saying so. MEXCOVID's tables (demographics, paired endpoints, CT Wilcoxon,
HTML) are tests/unit/test_reports.py run with `--mexcovid-engine`.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wardcrf.engine import model

OLD = '[analysis]\nci_level = 0.95\nproportion_ci = "wilson"\ndifference_ci = "newcombe"\n\n'
ANALYSIS = """[analysis]
ci_level = 0.95
proportion_ci = "wilson"
difference_ci = "newcombe"

[[analysis.characteristics]]
code = "weight_kg"
label = "weight, kg <b>&amp;</b>"
value = "round(screening.weight, 1)"

[[analysis.endpoints]]
code = "serious_ae"
kind = "proportion"
label = "Serious adverse event <script>alert(1)</script>"
event = "exists(ae where serious == true)"
reference = "ZMAPP"

"""
DOSE = {"ZMAPP": "3100", "RDV": "200", "MAB114": "3100", "REGNEB3": "9300"}


def _palm() -> str:
    return (Path(model.__file__).parent.parent / "protocols" / "engine" / "palm.toml").read_text("utf-8")


def _source(analysis: str = ANALYSIS) -> str:
    text = _palm()
    assert text.count(OLD) == 1
    return text.replace(OLD, analysis, 1)


# -- the declarations, at load ---------------------------------------------------------------------


def test_the_variant_loads_and_mexcovid_declares_format_1s_tables() -> None:
    m = model.parse(_source(), "palm-outcomes.toml")
    assert [c["code"] for c in m.data["analysis"]["characteristics"]] == [
        "weight_kg",  # the variant's, then PALM's own
        "sex",
        "age",
        "weight",
        "onset_to_randomization_days",
        "ct_np",
    ]
    mex = model.shipped("mexcovid.toml").data["analysis"]
    assert [c["code"] for c in mex["characteristics"]] == [
        "sex",
        "age",
        "onset_to_admission_days",
        "onset_to_first_dose_days",
    ]
    (series,) = mex["series"]
    assert (series["form"], series["compare"]) == ("vitals", "post_dose_vitals")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('code = "weight_kg"', 'code = "n"', "'n' is the number of participants"),
        ('code = "weight_kg"', 'code = "sex"', "'sex' is used twice"),
        ('value = "round(screening.weight, 1)"', 'value = "screening.wieght"', "wieght"),
        (
            'fields = ["temp", "pulse", "oxysat"]',
            'fields = ["temp", "timepoint"]',
            "not a number or integer field",
        ),
        ('points = ["pre_infusion_vitals",', 'points = ["pre_vitals",', "not a [[dose_assessments]] code"),
        (
            'form = "vitals"\nfields = ["temp", "pulse", "oxysat"]',
            'form = "labs"\nfields = ["creat"]',
            "records form 'vitals', not 'labs'",
        ),
        ('form = "vitals"\nfields', 'form = "vital"\nfields', "form 'vital' is not declared"),
        ('value = "round(screening.weight, 1)"', 'value = "screening.weight\\u0007"', "U+0007"),
        ('value = "round(screening.weight, 1)"', 'value = "' + "1 + " * 600 + '1"', "value"),
        ('code = "weight_kg"', 'code = "Weight; DROP"', "code"),
        ('compare = "post_infusion_vitals"', "compare = 3", "compare"),
    ],
)
def test_a_malformed_declaration_is_refused_by_protocol_check_in_one_line(
    cli, tmp_path: Path, old: str, new: str, problem: str
) -> None:
    text = _source()
    assert text.count(old) == 1, old
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1), "utf-8")
    r = cli("protocol", "check", str(bad))
    assert r.code == 1, r.out + r.err
    line = next(x for x in r.err.splitlines() if problem in x)
    assert "bad.toml:" in line and "analysis" in line, r.err
    assert "Traceback" not in r.err


# -- a ward without endpoints ----------------------------------------------------------------------


def _bare_site(cli, tmp_path: Path, source: str) -> dict[str, str]:
    """`wardcrf init --protocol FILE` and an auditor: what a report needs, no hub."""
    from site_users import PASSWORD

    from wardcrf import users
    from wardcrf.site import Site

    given = tmp_path / "protocol.toml"
    given.write_text(source, "utf-8")
    env = {"WARDCRF_DATA_DIR": str(tmp_path / "ward")}
    r = cli(
        "init", "--site", "KIN01", "--device", "l1", "--admin", "admin", "--protocol", str(given), env=env
    )
    assert r.code == 0, r.err
    s = Site.open(tmp_path / "ward").unlock("admin", PASSWORD)
    try:
        users.add_user(s, "auditor", "Audrey Auditor", "auditor", PASSWORD)
        users.add_user(s, "clinician", "Clint Clinician", "clinician", PASSWORD)
    finally:
        s.close()
    return env


def test_a_protocol_without_endpoints_gets_a_report_that_says_so(cli, tmp_path: Path) -> None:
    text = _palm()
    start = text.index("[[analysis.endpoints]]")
    end = text.index("# ----", start)
    env = _bare_site(cli, tmp_path, text[:start] + text[end:])
    r = cli("report", "outcomes", "--format", "json", user="auditor", env=env)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert (data["markers"], data["endpoints"], data["series"]) == ([], [], [])
    assert data["demographics"] == {
        "n": 0,
        "characteristics": [],
        "by_arm": {a: {"n": 0} for a in DOSE},
    }
    r = cli("report", "outcomes", user="auditor", env=env)
    assert r.code == 0 and "declares no endpoint, characteristic or series" in r.out, r.err
    # a role that may not report the trial's data: one line, exit 1
    r = cli("report", "outcomes", user="clinician", env=env)
    assert r.code == 1 and "may not" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    # an unknown quartile method is a usage error
    r = cli("report", "outcomes", "--quartiles", "hf99", user="auditor", env=env)
    assert r.code == 2 and "hf99" in r.err


# -- PALM end to end -------------------------------------------------------------------------------


def test_palm_every_declared_endpoint_per_arm_through_the_cli(cli, tmp_path: Path, monkeypatch) -> None:
    from site_users import PASSWORD
    from test_engine_ward_cli import _infusion, _product, _vitals, _ward
    from typed_support import assert_shape
    from wf_support import ready_kit_on

    from wardcrf.errors import Refused
    from wardcrf.reports import engine_endpoints, engine_outcomes
    from wardcrf.site import Site

    w = _ward(cli, tmp_path, monkeypatch, "palm", source=_source())

    def outcomes() -> dict:
        r = w.run("report", "outcomes", "--format", "json", user="auditor")
        assert r.code == 0, r.err
        out = json.loads(r.out)
        assert_shape(out, engine_outcomes.OutcomesReport)  # typed down to each arm
        return out

    # nobody enrolled: every endpoint with no data yet, per arm, nothing invented
    empty = outcomes()
    assert [a["code"] for a in empty["arms"]] == list(DOSE)
    assert empty["demographics"]["n"] == 0 and empty["enrolled"] == 0
    got = {e["code"]: e for e in empty["endpoints"]}
    assert list(got) == ["serious_ae", "mortality_d28", "time_to_death"]
    assert {a: (x["k"], x["n"], x["estimate"]) for a, x in got["serious_ae"]["arms"].items()} == {
        a: (0, 0, None) for a in DOSE
    }
    assert all(c["estimate"] is None for c in got["mortality_d28"]["comparisons"])
    assert got["time_to_death"]["log_rank"]["p"] is None
    r = w.run("report", "outcomes", "--format", "md", user="auditor")
    assert r.code == 0 and "not computed" in r.out, r.err
    r = w.run("report", "endpoints", user="auditor")  # the default text: words, never None or a key
    assert r.code == 0, r.err
    assert (
        "ZMAPP: dead by day 28: 0 of 0 evaluable, not estimable: ZMAPP has no participant; censored alive"
        " before day 28: 0; no follow-up: 0; Kaplan–Meier 1 − S at day 28: not estimable: nobody followed yet"
    ) in r.out.splitlines()
    assert "RDV vs ZMAPP: difference not estimable: RDV has no participant; ZMAPP has no participant" in r.out
    assert "None" not in r.out and "censored_before_day" not in r.out and "no_follow_up" not in r.out

    day1 = w.now.date()
    people: list[tuple[str, str]] = []
    for _ in range(8):
        pid = w.consent()
        assert w.screen(pid).code == 0
        assert w.run("submit", "enrollment", "--participant", pid, f"date={day1.isoformat()}").code == 0
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        people.append((pid, r.out.split("randomized: arm ", 1)[1].split()[0]))
    counts = {a: sum(1 for _p, x in people if x == a) for a in DOSE}
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
    dead, dead_arm = people[0]
    w.at(w.now + timedelta(days=4))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    day = w.now.date().isoformat()
    r = w.run(
        "submit",
        "disposition",
        "--participant",
        dead,
        "stage=end_of_study",
        "status=death",
        f"date={day}",
        f"death_date={day}",
        "reason=Ebola virus disease",
    )
    assert r.code == 0, r.err

    data = outcomes()
    d = data["demographics"]
    assert d["n"] == 8 and d["sex"] == {"F": 8} and d["weight"]["median"] == pytest.approx(62)
    assert d["onset_to_randomization_days"]["median"] == pytest.approx(3)
    assert d["weight_kg"] == d["weight"] and d["age"]["median"] == pytest.approx(34)
    assert {a: x["n"] for a, x in d["by_arm"].items()} == counts
    assert all(d["by_arm"][a]["sex"]["counts"] == {"F": counts[a]} for a in DOSE if counts[a])
    # every declared endpoint per arm: the endpoints report's numbers, one owner
    r = w.run("report", "endpoints", "--format", "json", user="auditor")
    assert r.code == 0, r.err
    owner = {e["code"]: e for e in json.loads(r.out)["endpoints"]}
    got = {e["code"]: e for e in data["endpoints"]}
    for code, e in got.items():
        assert {k: v for k, v in e.items() if k != "label"} == owner[code], code
    assert got["serious_ae"]["label"] == "Serious adverse event <script>alert(1)</script>"
    assert {a: (x["k"], x["n"]) for a, x in got["serious_ae"]["arms"].items()} == {
        a: (0, counts[a]) for a in DOSE
    }
    assert {c["arm"] for c in got["serious_ae"]["comparisons"]} == set(DOSE) - {"ZMAPP"}
    mortality = got["mortality_d28"]["arms"][dead_arm]
    assert (mortality["k"], mortality["n"]) == (1, 1) and mortality["lower"] < 1 / 1 <= mortality[
        "upper"
    ] + 1e-9
    assert got["time_to_death"]["arms"][dead_arm]["events"] == 1
    # day 4 of 28, everyone else alive: nobody of another arm is evaluable at day 28 yet, and Kaplan–Meier
    # is not estimated past the last follow-up (not a zero-width 0%)
    r = w.run("report", "endpoints", user="auditor")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    for arm in DOSE:
        if arm == dead_arm or not counts[arm]:
            continue
        x = got["mortality_d28"]["arms"][arm]
        assert (x["n"], x["censored_before_day"], x["kaplan_meier"]) == (0, counts[arm], None)
        assert (
            f"{arm}: dead by day 28: 0 of 0 evaluable, not estimable: no participant of {arm} evaluable at day 28"
            f" yet; censored alive before day 28: {counts[arm]}; no follow-up: 0; Kaplan–Meier 1 − S at day 28:"
            " not estimable: nobody followed to day 28 yet"
        ) in lines, r.out
        if arm != "ZMAPP":  # the reason names the arm without anyone evaluable, never "no participant"
            prefix = (
                f"{arm} vs ZMAPP: difference not estimable: no participant of {arm} evaluable at day 28 yet"
            )
            assert any(ln.startswith(prefix) for ln in lines), r.out
    dead_line = next(
        x
        for x in lines
        if x.startswith(f"{dead_arm}: dead by day 28: 1 of 1 evaluable, 100.0% (95% CI 20.7% to 100.0%)")
    )
    assert "None" not in r.out and "an arm has no participant" not in r.out, dead_line
    r = w.run("report", "outcomes", "--format", "md", user="auditor")
    assert r.code == 0 and "nobody followed to day 28 yet" in r.out and "evaluable at day 28 yet" in r.out
    assert set(got["time_to_death"]["arms"]) == set(DOSE)
    # vital signs across the infusions, per arm: infusion 1's values after it
    temp = next(s for group in data["series"] for s in group if s["field"] == "temp")
    assert temp["title"] == "Vital signs before and after each infusion" and temp["unit"] == "C"
    assert temp["points"] == ["vitals before infusion", "vitals after infusion"]
    assert temp["compared"] == "vitals after infusion"
    for arm, x in temp["arms"].items():
        assert x["by_administration"]["administration 1"]["n"] == counts[arm]
        assert x["kruskal"]["p"] is None  # one administration with values: nothing to compare
        # before AND after each infusion (it showed the values after only)
        assert list(x["by_point"]) == temp["points"]
        for point in temp["points"]:
            assert x["by_point"][point]["administration 1"]["n"] == counts[arm]
            assert x["by_point"][point]["administration 2"]["n"] == 0  # not given yet
        assert x["by_point"]["vitals after infusion"] == x["by_administration"]
    assert temp["participants"][dead][:2] == [38.2, 38.2]
    # the time to death censors where mortality does: nobody "no follow-up" beside "censored alive"
    for arm in DOSE:
        ttd, mort = got["time_to_death"]["arms"][arm], got["mortality_d28"]["arms"][arm]
        assert ttd["no_follow_up"] == mort["no_follow_up"] == 0
        assert ttd["n"] == mort["n"] + mort["censored_before_day"] == counts[arm]
    r = w.run("report", "outcomes", "--format", "md", user="auditor")
    assert r.code == 0, r.err
    rows = [x for x in r.out.splitlines() if x.startswith("| Temperature |")]
    arm = next(a for a in DOSE if counts[a])
    assert (
        f"| Temperature | {arm} | C | vitals before infusion | administration 1: 38.2 (IQR 38.2–38.2), n={counts[arm]} | not compared (the protocol compares vitals after infusion) |"
        in rows
    ), rows
    after = next(x for x in rows if x.startswith(f"| Temperature | {arm} | C | vitals after infusion |"))
    assert after.endswith("| not computed: fewer than two groups with values |"), after  # "—" said why
    assert "| — |" not in "\n".join(rows)

    # the HTML escapes what the protocol supplies; Markdown names each endpoint and its kind
    out = tmp_path / "outcomes.html"
    r = w.run("report", "outcomes", "--format", "html", "--out", str(out), user="auditor")
    assert r.code == 0, r.err
    html = out.read_text("utf-8")
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "&lt;b&gt;&amp;amp;&lt;/b&gt;" in html
    assert html.count("<svg") == 3  # temperature, pulse and oxygen saturation across the infusions
    r = w.run("report", "outcomes", "--format", "md", user="auditor")
    assert r.code == 0, r.err
    assert "Death at 28 days (mortality, primary)" in r.out and "Log-rank test across every arm" in r.out

    # a characteristic must give a number, a duration, a code, text or yes/no: a date is refused by name
    s = Site.open(w.dir).unlock("auditor", PASSWORD)
    try:
        pop = engine_endpoints.read(s)
        person = next(p for p in pop.people if p.id == dead)
        with pytest.raises(Refused, match=r"characteristic onset gives .*a characteristic is a number"):
            engine_outcomes._characteristic_value(
                pop, {"code": "onset", "value": "screening.symptom_onset"}, person
            )
    finally:
        s.close()
