"""The languages a ward offers come from its protocol (eyes D12): PALM007's `fr` labels selectable,
MEXCOVID's choice (English, 中文) not imposed on a ward in Kinshasa; a language code from a protocol
file is a code, never text that reaches a screen.

The screens' own words exist in English, 中文 and Français (screens/i18n.py CATALOGUED); a declared
language without them (say pt) shows the protocol's labels in it and falls back to English string by string.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from site_users import PASSWORD
from wardcrf.screens import i18n

from wardcrf import protocol, users
from wardcrf.engine import model
from wardcrf.errors import UsageError
from wardcrf.protocol_file import ProtocolFileError
from wardcrf.site import Site

HOSTILE = ["fr\x1b[31m", "../x", "[bold]fr", "EN", "f", "fr_FR", "a" * 300, "fr\u202e", ""]


@pytest.fixture(autouse=True)
def _catalogue_languages():
    yield
    i18n.offer(None)
    i18n.set_language("en")


def _palm007_site(tmp_path: Path) -> Site:
    made = Site.init(
        tmp_path / "p7",
        site="KIN01",
        device_name="etc-laptop1",
        admin="admin",
        password=PASSWORD,
        zone_name="Africa/Kinshasa",
        protocol_file=model.shipped("palm007.toml"),
    )
    return made.site


def test_a_ward_offers_the_languages_its_protocol_declares(tmp_path, session_for):
    site = _palm007_site(tmp_path)
    s = site.unlock("admin", PASSWORD)
    try:
        assert users.languages(s) == ("en", "fr")
        users.set_language(s, "fr")
        assert users.get(s.store, "admin")["language"] == "fr"
        with pytest.raises(UsageError, match=r"unknown language 'zh': this ward's protocol declares en, fr"):
            users.set_language(s, "zh")  # 中文 is MEXCOVID's, not declared by PALM007
    finally:
        s.close()
    mexcovid = session_for("clinician")
    assert users.languages(mexcovid) == ("en", "zh")
    with pytest.raises(UsageError, match=r"declares en, zh"):
        users.set_language(mexcovid, "fr")  # not on MEXCOVID unless declared
    assert users.get(mexcovid.store, "clinician")["language"] != "fr"


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_hostile_language_is_refused_in_one_line_and_nothing_saved(session_for, bad):
    s = session_for("clinician")
    before = s.store.scalar("SELECT count(*) FROM events")
    with pytest.raises(UsageError) as refused:
        users.set_language(s, bad)
    message = str(refused.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 160
    assert s.store.scalar("SELECT count(*) FROM events") == before


def test_the_screens_offer_the_declared_languages_in_their_words():
    assert i18n.offered() == i18n.CATALOGUED == ("en", "zh", "fr")  # before sign-in
    assert i18n.offer(("en", "fr")) == ("en", "fr")  # PALM007
    i18n.set_language("fr")
    assert i18n.language() == "fr" and i18n.has_catalogue("fr")
    assert i18n.t("login.title") == "Connexion" and i18n.t("palette.language", language="Français") == (
        "Langue : Français"
    )
    assert protocol.tr({"en": "Informed consent", "fr": "Consentement éclairé"}, i18n.language()) == (
        "Consentement éclairé"
    )
    with pytest.raises(ValueError, match="allowed: en, fr"):
        i18n.set_language("zh")
    assert i18n.offer(("en", "zh")) == ("en", "zh") and i18n.language() == "en"  # fr gone: English


def test_a_declared_language_without_a_catalogue_falls_back_to_english_per_string():
    assert i18n.offer(("en", "pt")) == ("en", "pt")
    i18n.set_language("pt")
    assert not i18n.has_catalogue("pt") and i18n.name_of("pt") == "Português" and i18n.name_of("xx") == "xx"
    assert i18n.t("login.title") == "Sign in"  # the screens' words in English
    assert protocol.tr({"en": "Informed consent", "pt": "Consentimento"}, i18n.language()) == "Consentimento"
    assert (
        protocol.tr({"en": "Informed consent"}, i18n.language()) == "Informed consent"
    )  # a label without pt


def test_the_screens_never_offer_a_code_that_is_not_a_language_code():
    assert i18n.offer(("fr", *HOSTILE, "zh")) == (
        "en",
        "fr",
        "zh",
    )  # English first, then the protocol's order


def test_one_file_is_one_file():
    assert i18n.t_count("dash.sync_export_value", 1, at="12-07 08:29", files=1) == "12-07 08:29 (1 file)"
    assert i18n.t_count("dash.sync_export_value", 2, at="12-07 08:29", files=2) == "12-07 08:29 (2 files)"
    assert i18n.t_count("sync.last_export", 1, time="08:29", files=1) == "Last export: 08:29 (1 file)"
    assert i18n.t_count("sync.last_export", 0, time="08:29", files=0) == "Last export: 08:29 (0 files)"
    i18n.set_language("zh")
    assert i18n.t_count("dash.sync_export_value", 1, at="12-07", files=1) == "12-07（1 个文件）"
    i18n.set_language("fr")
    assert i18n.t_count("dash.sync_export_value", 1, at="12-07", files=1) == "12-07 (1 fichier)"
    assert i18n.t_count("dash.sync_export_value", 3, at="12-07", files=3) == "12-07 (3 fichiers)"


def _format1_with(languages: str) -> str:
    src = resources.files("wardcrf.protocols").joinpath("mexcovid.toml").read_text("utf-8")
    assert 'languages = ["en", "zh"]' in src
    return src.replace('languages = ["en", "zh"]', f"languages = {languages}", 1)


def _format2_with(languages: str) -> str:
    src = resources.files("wardcrf.protocols.engine").joinpath("palm007.toml").read_text("utf-8")
    assert 'languages = ["en", "fr"]' in src
    return src.replace('languages = ["en", "fr"]', f"languages = {languages}", 1)


def test_declared_language_codes_are_accepted_at_load():
    assert protocol.parse(_format1_with('["en", "zh"]'), "m.toml").languages == ("en", "zh")
    assert protocol.parse(_format1_with('["en", "zh", "pt-BR"]'), "m.toml").languages == ("en", "zh", "pt-BR")
    assert tuple(model.parse(_format2_with('["en", "fr"]'), "p.toml").data["protocol"]["languages"]) == (
        "en",
        "fr",
    )


@pytest.mark.parametrize("bad", ["../x", "[bold]zh", "EN", "zh\\u001b[31m", "a" * 300, "zh\\u202e"])
def test_a_hostile_language_code_in_a_protocol_is_refused_at_load(bad):
    with pytest.raises(ProtocolFileError, match=r"m\.toml:\d+: protocol\.languages\[2\]") as f1:
        protocol.parse(_format1_with(f'["en", "zh", "{bad}"]'), "m.toml")
    assert "\x1b" not in str(f1.value)
    with pytest.raises(ProtocolFileError, match=r"p\.toml:\d+: protocol\.languages\[2\]") as f2:
        model.parse(_format2_with(f'["en", "fr", "{bad}"]'), "p.toml")
    assert "\x1b" not in str(f2.value)


def test_a_language_listed_twice_is_refused_at_load():
    with pytest.raises(ProtocolFileError, match=r"protocol\.languages: a language is listed twice"):
        protocol.parse(_format1_with('["en", "zh", "zh"]'), "m.toml")
    with pytest.raises(ProtocolFileError, match=r"protocol\.languages.*non-unique"):
        model.parse(_format2_with('["en", "fr", "fr"]'), "p.toml")


@pytest.mark.parametrize("code", ["fr", "zh", "pt-BR"])
def test_a_synced_language_choice_with_a_declared_code_is_accepted(code):
    from wardcrf import eventbodies

    assert eventbodies.check_body("user.language_set", {"username": "clinician", "language": code}) is None


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_synced_language_choice_with_a_hostile_code_is_refused(bad):
    """A `user.language_set` arriving in a bundle is checked like any event body (the language is shown)."""
    from wardcrf import eventbodies

    assert eventbodies.check_body("user.language_set", {"username": "clinician", "language": bad}) is not None
