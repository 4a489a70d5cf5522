"""Reports from recorded values: outcomes (statistics checked against SciPy), safety, audit PDF."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> es.CohortSite:
    return es.make_ward(tmp_path_factory.mktemp("ward") / "site")


@pytest.fixture
def fresh_ward(ward: es.CohortSite, tmp_path: Path) -> es.CohortSite:
    dst = tmp_path / "site"
    shutil.copytree(ward.data_dir, dst, ignore=shutil.ignore_patterns("*.lock"))
    return es.CohortSite(dst, ward.cohort, ward.users)


def outcomes_json(ward: es.CohortSite) -> dict:
    code, out, err = es.run_cli(ward.data_dir, "report", "outcomes", "--format", "json")
    assert code == 0, err
    return json.loads(out)


# -- outcomes --------------------------------------------------------------------------------


def test_outcomes_demographics_use_the_protocols_quartile_definition(ward):
    data = outcomes_json(ward)
    d = data["demographics"]
    assert d["n"] == 7 and d["sex"] == {"F": 3, "M": 4}
    ages = [c["age"] for c in es.COHORT]
    assert d["age"]["median"] == pytest.approx(np.median(ages))
    # MEXCOVID's protocol: Hyndman-Fan type 6, p(n+1), as GraphPad Prism
    assert data["methods"]["quartiles"] == "hf6" and "GraphPad Prism" in data["methods"]["summary"]
    assert [d["age"]["q1"], d["age"]["q3"]] == pytest.approx(
        list(np.percentile(ages, [25, 75], method="weibull"))
    )
    adm = [c["adm"] for c in es.COHORT]
    first = [c["dose"] for c in es.COHORT]
    assert d["onset_to_admission_days"]["median"] == pytest.approx(np.median(adm))
    assert d["onset_to_first_dose_days"]["q3"] == pytest.approx(np.percentile(first, 75, method="weibull"))
    # a sensitivity analysis with R's default (type 7) says so
    code, out, err = es.run_cli(ward.data_dir, "report", "outcomes", "--format", "json", "--quartiles", "hf7")
    assert code == 0, err
    data7 = json.loads(out)
    assert data7["demographics"]["age"]["q1"] == pytest.approx(np.percentile(ages, 25))
    assert "quartiles hf7 (protocol: hf6)" in data7["methods"]["source"]


def test_outcomes_before_after_per_participant_with_improved_counts(ward):
    markers = {m["key"]: m for m in outcomes_json(ward)["markers"]}
    for i, key in enumerate(es.LAB_FIELDS):
        m = markers[key]
        before = [c["before"][i] for c in es.COHORT]
        after = [c["after"][i] for c in es.COHORT]
        improved = sum((a > b) if key == "lym" else (a < b) for b, a in zip(before, after, strict=True))
        assert m["improved"] == improved and m["n_paired"] == 7
        assert m["summary"].endswith(f"in {improved} of 7")
        assert m["unit"] == es.LAB_UNITS[key]
        assert [p["before"] for p in m["participants"]] == pytest.approx(before)
        assert m["after"]["median"] == pytest.approx(np.median(after))
        assert m["values"]["post_treatment"] == {"labelled": 7, "used": 7, "excluded": 0, "not_selected": 0}
        kw = stats.kruskal(before, after)
        assert m["kruskal"]["H"] == pytest.approx(kw.statistic) and m["kruskal"]["p"] == pytest.approx(
            kw.pvalue
        )
    assert markers["lym"]["improved"] == 7 and markers["crp"]["improved"] == 6


def test_ct_score_wilcoxon_is_exact_with_the_incomplete_scan_excluded_and_counted(ward):
    ct = next(m for m in outcomes_json(ward)["markers"] if m["key"] == "total")
    # the last participant's post-treatment scan has a segment not evaluable: excluded by the stated rule
    assert ct["values"]["post_treatment"] == {"labelled": 7, "used": 6, "excluded": 1, "not_selected": 0}
    (x,) = ct["excluded"]
    assert x["participant"] == "WUH01-007" and x["reason"] == "incomplete: 17 of 18 evaluable segments"
    before = [c["ct"][0] for c in es.COHORT[:6]]
    after = [c["ct"][1] for c in es.COHORT[:6]]
    assert ct["n_paired"] == 6 and ct["before"]["median"] == pytest.approx(np.median(before))
    w = ct["wilcoxon"]
    assert w["exact"] is True and "exact conditional distribution" in w["method"]
    assert "zero differences dropped" in w["method"] and w["n_nonzero"] == 5
    ref = stats.wilcoxon(before, after, zero_method="wilcox", method=stats.PermutationMethod())
    assert w["statistic"] == pytest.approx(ref.statistic) and w["p"] == pytest.approx(ref.pvalue)
    assert w["p"] == pytest.approx(2 / 2**5) and w["p_text"] == "p = 0.0625"


def test_wilcoxon_is_exact_for_small_samples_without_ties():
    from wardcrf.reports.stats import signed_rank

    before, after = [51, 44, 60, 38, 55, 62], [40, 30, 52, 37, 45, 49]
    w = signed_rank(before, after)
    assert w.exact and "exact conditional distribution" in w.method
    assert w.p == pytest.approx(stats.wilcoxon(before, after, method="exact").pvalue)
    assert signed_rank([1, 2], [1, 2]).p is None  # nothing to test: said, not invented


def test_outcomes_html_embeds_svg_plots_and_markdown_states_methods(ward, tmp_path):
    out = tmp_path / "outcomes.html"
    code, _, err = es.run_cli(ward.data_dir, "report", "outcomes", "--format", "html", "--out", str(out))
    assert code == 0, err
    html = out.read_text()
    assert html.count("<svg") == 5  # CT before/after + four vital signs
    assert "CT score (0-72) per participant" in html and "Temperature" in html and "<script" not in html
    code, md, err = es.run_cli(ward.data_dir, "report", "outcomes", "--format", "md")
    assert code == 0, err
    assert "median and interquartile range" in md and "Kruskal–Wallis" in md
    assert "improved in 7 of 7" in md


def test_outcomes_refuses_roles_without_export_permission(ward):
    code, _, err = es.run_cli(ward.data_dir, "report", "outcomes", user="clinician")
    assert code == 1 and "may not" in err


def test_outcomes_on_a_site_without_doses_reports_empty_not_crash(tmp_path):
    from wardcrf.site import Site

    Site.init(tmp_path / "empty", site="E1", device_name="l", admin="admin", password=es.PASSWORD)
    code, out, err = es.run_cli(tmp_path / "empty", "report", "outcomes", "--format", "json", user="admin")
    assert code == 0, err
    data = json.loads(out)
    assert data["demographics"]["n"] == 0
    assert next(m for m in data["markers"] if m["key"] == "total")["wilcoxon"]["p"] is None


# -- safety ----------------------------------------------------------------------------------


def test_safety_exposure_from_recorded_doses_and_every_ae_with_dsmg(ward):
    code, out, err = es.run_cli(ward.data_dir, "report", "safety", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["totals"]["doses"] == 35 and data["totals"]["participants_dosed"] == 7
    assert data["totals"]["cumulative_dose"] == [{"value": pytest.approx(7 * 5 * 2.0e8), "unit": "particles"}]
    assert [c for e in data["exposure"] for c in e["cumulative_dose"]] == [{"value": 1.0e9, "unit": "particles"}] * 7
    aes = {a["term"]: a for a in data["adverse_events"]}
    pe = aes["Pulmonary embolism"]
    assert pe["serious"] and pe["grade"] == 3 and pe["serious_criteria"] == ["hospitalization"]
    assert pe["causality"] == "unlikely" and pe["outcome"] == "recovering"
    assert pe["dsmg"][0]["relatedness"] == "unlikely" and pe["dsmg"][0]["unexpected"] is False
    assert data["serious"] == 1
    assert data["prespecified_by_dose"]["cough"]["ae_records"] == {"2": 1}


def test_safety_reports_deviations_and_short_schedules(fresh_ward):
    from wardcrf import records
    from wardcrf.site import Site

    s = Site.open(fresh_ward.data_dir).unlock("clinician", es.PASSWORD)
    try:
        records.submit(
            s,
            "dose",
            {
                "kit_id": "KIT-X",
                "particles": es.u(2.0e8, "particles"),
                "dose_number": 1,
                "start": "2020-04-01T12:00:00+08:00",
                "window": "late",
                "due": "2020-04-01T09:00:00+08:00",
            },
            subject="participant:WUH01-099",
        )
    finally:
        s.close()
    code, md, err = es.run_cli(fresh_ward.data_dir, "report", "safety", "--format", "md")
    assert code == 0, err
    assert "dose 1 late" in md and "1 of 5 scheduled doses recorded" in md


# -- audit PDF -------------------------------------------------------------------------------


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


def test_audit_pdf_of_a_participant_shows_records_changes_signatures_and_photo_hashes(ward, tmp_path):
    out = tmp_path / "casebook.pdf"
    pid = ward.cohort.participants[0]
    code, stdout, err = es.run_cli(
        ward.data_dir, "report", "audit", "--out", str(out), "--participant", pid, "--json", user="auditor"
    )
    assert code == 0, err
    assert json.loads(stdout)["subjects"] == [f"participant:{pid}"]
    text = pdf_text(out)
    assert f"Casebook of participant {pid}" in text
    assert ward.cohort.photo_refs[0].removeprefix("sha256:") in text  # the consent photo's SHA-256
    assert "Clinician of WUH01" in text and "Investigator of WUH01" in text  # printed names
    assert "meaning: approved" in text and "CHANGED SINCE SIGNED" in text  # §11.50 and "changed since signed"
    assert "CHANGED SINCE FIRST ENTRY" in text and "syringe" in text  # Annex 11 §8 / §9
    assert "6 mL -> 6.5 mL" in text
    assert "event chains" in text and "intact" in text
    assert "Reached this database: created on this device" in text


def test_audit_pdf_prints_chinese_text_or_escapes_it_never_crashes(ward, tmp_path, monkeypatch):
    from wardcrf.reports import pdf

    pid = ward.cohort.participants[1]  # has an AE term in Chinese
    out = tmp_path / "cjk.pdf"
    if pdf.choose_font().cjk:
        assert (
            es.run_cli(ward.data_dir, "report", "audit", "--out", str(out), "-p", pid, user="auditor")[0] == 0
        )
        assert "吸入后咳嗽" in pdf_text(out)
    # no Unicode font at all: escaped, still a PDF with every other character
    monkeypatch.setattr(pdf, "font_candidates", lambda: [])
    monkeypatch.setattr(pdf, "LATIN_FALLBACK", "/nonexistent.ttf")
    pdf._choose.cache_clear()
    out2 = tmp_path / "latin.pdf"
    code, _, err = es.run_cli(ward.data_dir, "report", "audit", "--out", str(out2), "-p", pid, user="auditor")
    assert code == 0, err
    text = pdf_text(out2)
    assert "<U+5438>" in text and "Cough after inhalation" in text


def test_audit_pdf_of_a_kit_lists_the_dose_that_used_it(ward, tmp_path):
    out = tmp_path / "kit.pdf"
    kit = ward.cohort.kits[0]
    code, _, err = es.run_cli(
        ward.data_dir, "report", "audit", "--out", str(out), "--kit", kit, user="auditor"
    )
    assert code == 0, err
    text = pdf_text(out)
    assert f"Custody chain of kit {kit}" in text and "Used for participant WUH01-001" in text


def test_audit_pdf_verifies_photos_through_the_photo_store_when_present(ward, tmp_path, monkeypatch):
    """With a photo store, each photo is re-hashed: verified with a thumbnail, or FAILED."""
    import dataclasses
    import io

    from PIL import Image

    from wardcrf.reports import evidence

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
    good = ward.cohort.photo_refs[0].removeprefix("sha256:")

    def checked_original(store, sha):
        if sha == good:
            return "intact", None, buf.getvalue()
        return "MISMATCH", f"photo sha256:{sha}: stored bytes do not match their hash (altered)", None

    from wardcrf import evidence as core_evidence

    registered = core_evidence.photos()
    fake = dataclasses.replace(registered, checked_original=checked_original)
    monkeypatch.setattr(core_evidence, "photo_evidence", lambda: fake)
    ok = evidence.check_photo(None, ward.cohort.photo_refs[0])  # type: ignore[arg-type]
    assert ok.verified is True and ok.thumbnail and ok.thumbnail[:2] == b"\xff\xd8"
    bad = evidence.check_photo(None, ward.cohort.photo_refs[1])  # type: ignore[arg-type]
    assert bad.verified is False and bad.status.startswith("MISMATCH - FAILED") and bad.word == "MISMATCH"
    out = tmp_path / "photos.pdf"
    code, _, err = es.run_cli(
        ward.data_dir, "report", "audit", "--out", str(out), "-p", ward.cohort.participants[0], user="auditor"
    )
    assert code == 0, err
    assert "verified: the stored original hashes to this SHA-256" in pdf_text(out)


def test_audit_pdf_refusals(ward, tmp_path):
    code, _, err = es.run_cli(
        ward.data_dir,
        "report",
        "audit",
        "--out",
        str(tmp_path / "a.pdf"),
        "--participant",
        "WUH01-999",
        user="auditor",
    )
    assert code == 1 and "unknown participant WUH01-999" in err
    code, _, err = es.run_cli(
        ward.data_dir, "report", "audit", "--out", str(tmp_path / "a.pdf"), "--kit", "NOPE", user="auditor"
    )
    assert code == 1 and "unknown kit NOPE" in err
    code, _, err = es.run_cli(
        ward.data_dir,
        "report",
        "audit",
        "--out",
        str(tmp_path / "a.pdf"),
        "--participant",
        "WUH01-001",
        "--kit",
        "K",
        user="auditor",
    )
    assert code == 2 and "not both" in err
    code, _, err = es.run_cli(
        ward.data_dir, "report", "audit", "--out", str(tmp_path / "a.txt"), user="auditor"
    )
    assert code == 2 and ".pdf" in err
    assert not list(tmp_path.iterdir())


def test_audit_pdf_of_a_kit_follows_its_custody_records_in_order(fresh_ward, tmp_path):
    """Cold-chain records (subject lot:<LOT>) list the kits they moved; the kit's copy includes them."""
    from wardcrf import records, signatures
    from wardcrf.site import Site

    kit = fresh_ward.cohort.kits[0]
    # A clinician records custody (a coordinator may not originate records: wardcrf.authority).
    s = Site.open(fresh_ward.data_dir).unlock("clinician", es.PASSWORD)
    try:
        handover = records.submit(
            s,
            "cc_handover",
            {
                "kits": [kit, "KIT-OTHER"],
                "from_party": "courier 顺丰",
                "to_party": "pharmacy",
                "condition": "frozen, logger in range",
            },
            subject="lot:LOT-A1",
        )
        signatures.sign(s, target=handover.id, meaning="received", password=es.PASSWORD)
    finally:
        s.close()
    out = tmp_path / "kit.pdf"
    code, _, err = es.run_cli(
        fresh_ward.data_dir, "report", "audit", "--out", str(out), "--kit", kit, user="auditor"
    )
    assert code == 0, err
    text = pdf_text(out)
    assert f"record {handover.id}" in text and "courier" in text and "meaning: received" in text
    assert text.index(f"record {handover.id}") > text.index("Used for participant WUH01-001")
