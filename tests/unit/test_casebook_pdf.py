"""The casebook an inspector reads (issue 22): every finding about `report audit --participant`.

Each test read the PDF as a person would: the text pypdf extracts, and the
colours the text is drawn in (a changed record must not look like an unchanged one).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import export_support as es

from wardcrf.reports import pdf as pdfdoc


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> es.CohortSite:
    return es.make_ward(tmp_path_factory.mktemp("ward") / "site")


@pytest.fixture
def fresh_ward(ward: es.CohortSite, tmp_path: Path) -> es.CohortSite:
    dst = tmp_path / "site"
    shutil.copytree(ward.data_dir, dst, ignore=shutil.ignore_patterns("*.lock"))
    return es.CohortSite(dst, ward.cohort, ward.users)


def casebook(site: es.CohortSite, pid: str, out: Path) -> Path:
    code, _, err = es.run_cli(site.data_dir, "report", "audit", "--out", str(out), "-p", pid, user="auditor")
    assert code == 0, err
    return out


def pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(str(path)).pages]


def coloured_text(path: Path) -> list[tuple[str, tuple[float, ...]]]:
    """(text, fill colour it is drawn in) for every text run of the document."""
    from pypdf import PdfReader

    runs: list[tuple[str, tuple[float, ...]]] = []
    for page in PdfReader(str(path)).pages:
        colour: list[tuple[float, ...]] = [(0.0,)]

        def before(op, args, cm, tm, colour=colour):
            if op in (b"rg", b"g"):
                colour[0] = tuple(round(float(a), 3) for a in args)

        def text(t, cm, tm, font, size, colour=colour):
            if t.strip():
                runs.append((t, colour[0]))

        page.extract_text(visitor_operand_before=before, visitor_text=text)
    return runs


def colour_of(runs, needle: str) -> tuple[float, ...]:
    hits = [c for t, c in runs if needle in t]
    assert hits, f"{needle!r} not drawn"
    return hits[0]


def test_changed_and_unchanged_records_are_drawn_in_distinct_styles(ward, tmp_path):
    pid = ward.cohort.participants[0]  # its first dose was amended after signing
    runs = coloured_text(casebook(ward, pid, tmp_path / "c.pdf"))
    changed = colour_of(runs, "CHANGED SINCE FIRST ENTRY")
    unchanged = colour_of(runs, "Unchanged since first entry")
    assert changed != unchanged
    assert changed == (1.0, 1.0, 1.0)  # white on the red box
    assert colour_of(runs, "CHANGED SINCE SIGNED") == (1.0, 1.0, 1.0)
    assert unchanged == tuple(round(c / 255, 3) for c in pdfdoc.CALM_TEXT)  # plain grey, no box


def test_every_page_says_page_n_of_m(ward, tmp_path):
    texts = pages(casebook(ward, ward.cohort.participants[0], tmp_path / "c.pdf"))
    n = len(texts)
    assert n > 2
    for i, text in enumerate(texts, start=1):
        assert f"page {i} of {n}" in text, text[-200:]


def test_amended_fields_are_listed_in_form_order_not_alphabetically(fresh_ward, tmp_path):
    from wardcrf import records
    from wardcrf.site import Site

    pid = fresh_ward.cohort.participants[2]
    s = Site.open(fresh_ward.data_dir).unlock("clinician", es.PASSWORD)
    try:
        dose = s.store.scalar(
            "SELECT event_id FROM records WHERE form = 'dose' AND subject = ? LIMIT 1",
            (f"participant:{pid}",),
        )
        # alphabetically interruptions < kit_id; the form asks for the kit first
        records.amend(
            s, dose, {"interruptions": 1, "kit_id": "EXO-9999"}, reason="transcribed from the sheet"
        )
    finally:
        s.close()
    text = "\n".join(pages(casebook(fresh_ward, pid, tmp_path / "c.pdf")))
    block = text[text.index("transcribed from the sheet") :]
    assert block.index("EXO-9999") < block.index("Interruptions")


def test_choices_print_their_label_once_and_labels_print_no_entry_hints(ward, tmp_path):
    text = "\n".join(pages(casebook(ward, ward.cohort.participants[0], tmp_path / "c.pdf")))
    assert "lesion" in text  # CT segments are choices
    assert not re.search(r"\d \(\d lesion", text)  # not "2 (2 lesion 1 to < 3 cm)"
    assert "(scan)" not in text and "Kit id:" in text
    assert "default: you" not in text


def test_printed_labels_drop_entry_hints_and_keep_definitions():
    from wardcrf import protocol

    forms = protocol.default_protocol().forms
    f = forms["dose"].fields
    assert f["given_by"].printed_label() == "Given by"
    assert f["kit_id"].printed_label() == "Kit id"
    assert f["given_by"].printed_label("zh") == "给药者"
    ae = forms["ae"].fields
    assert ae["causality"].printed_label() == "Causality (WHO-UMC)"  # a definition, not a hint


def test_no_machine_path_is_printed(ward, tmp_path):
    text = "\n".join(pages(casebook(ward, ward.cohort.participants[0], tmp_path / "c.pdf")))
    assert "/usr/" not in text and str(tmp_path) not in text and ".ttc" not in text and ".ttf" not in text
    assert "Font:" in text and "licen" in text.lower()  # what it is and under which licence


def test_a_chinese_ae_term_and_a_chinese_name_render_as_text(fresh_ward, tmp_path):
    font = pdfdoc.choose_font()
    if not font.cjk:
        pytest.skip("no TrueType font covering Chinese here (apt-get install fonts-wqy-microhei; CI does)")
    from wardcrf import records, signatures, users
    from wardcrf.site import Site

    pid = fresh_ward.cohort.participants[1]  # its AE term is 吸入后咳嗽
    admin = Site.open(fresh_ward.data_dir).unlock(fresh_ward.users["admin"], es.PASSWORD)
    try:
        users.add_user(admin, "liwei", "李伟", "investigator", es.PASSWORD)
    finally:
        admin.close()
    s = Site.open(fresh_ward.data_dir).unlock("liwei", es.PASSWORD)
    try:
        ae = s.store.scalar(
            "SELECT event_id FROM records WHERE form = 'ae' AND subject = ? LIMIT 1", (f"participant:{pid}",)
        )
        signatures.sign(s, target=ae, meaning="reviewed", password=es.PASSWORD)
        records.amend(s, ae, {"term": "吸入后咳嗽，伴胸闷"}, reason="补充：伴胸闷")
    finally:
        s.close()
    text = "\n".join(pages(casebook(fresh_ward, pid, tmp_path / "zh.pdf")))
    assert "E-signature: 李伟 (liwei)" in text
    assert "吸入后咳嗽 -> 吸入后咳嗽，伴胸闷" in text and "reason: 补充：伴胸闷" in text
    assert "<U+" not in text
    assert font.name in text and "Apache" in text  # WenQuanYi Micro Hei states its licence


def test_without_a_unicode_font_chinese_is_escaped_never_dropped(ward, tmp_path, monkeypatch):
    monkeypatch.setattr(pdfdoc, "font_candidates", lambda: [])
    monkeypatch.setattr(pdfdoc, "LATIN_FALLBACK", "/nonexistent.ttf")
    pdfdoc._choose.cache_clear()
    text = "\n".join(pages(casebook(ward, ward.cohort.participants[1], tmp_path / "latin.pdf")))
    assert "<U+5438>" in text and "Cough after inhalation" in text
    assert "built-in Helvetica" in text


def test_a_font_that_is_not_truetype_is_refused_in_one_line(ward, tmp_path, monkeypatch):
    bad = tmp_path / "font.ttf"
    bad.write_bytes(b"not a font")
    monkeypatch.setenv("WARDCRF_PDF_FONT", str(bad))
    out = tmp_path / "x.pdf"
    code, _, err = es.run_cli(
        ward.data_dir, "report", "audit", "--out", str(out), "-p", ward.cohort.participants[0], user="auditor"
    )
    assert code == 2 and "WARDCRF_PDF_FONT" in err and "TrueType" in err and not out.exists()
