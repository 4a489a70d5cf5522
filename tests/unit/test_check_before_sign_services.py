"""Check before you sign (issue 14, finding 5): every checkable rule runs before any password is asked.

Found: both parties typed their passwords, and only then was the handover
refused ("not after its last custody step"); the same for a non-image photo
and a missing logger serial. Here: the signed forms (`workflow.preflight`:
the consent's photo and witnesses, the sign-off's expected AEs), the
`wardcrf submit` of a consent; the CLI's custody steps are in
test_coldchain_cli_preflight.py. Each refusal comes with no password asked
and nothing saved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wf_support import PASSWORD, _copy_site, make_ward, photo_file

from wardcrf import workflow
from wardcrf.cli import form_cmds
from wardcrf.errors import Refused, ValidationFailed
from wardcrf.site import Site


class Asked:
    """Records every password prompt instead of answering from the environment alone."""

    def __init__(self, real) -> None:
        self.real = real
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "Password", env: str = "WARDCRF_PASSWORD") -> str:
        self.prompts.append(prompt)
        return self.real(prompt, env=env)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Asked:
    """The e-signature prompts of `wardcrf submit` (not the sign-in's)."""
    spy = Asked(form_cmds.ask_password)
    monkeypatch.setattr(form_cmds, "ask_password", spy)
    return spy


def _counts(store) -> tuple[int, int]:
    return (
        int(store.scalar("SELECT count(*) FROM events")),
        int(store.scalar("SELECT count(*) FROM photo_blobs") or 0),
    )


def _not_a_photo(tmp_path: Path) -> Path:
    path = tmp_path / "consent-page.jpg"
    path.write_text("these are minutes of a meeting, not a photograph")
    return path


# -- signed forms: the consent, the sign-off ------------------------------------------------


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _consent(photo: Path) -> dict[str, str]:
    return {
        "consenter": "participant",
        "form_version": "1.0",
        "witness_1": "investigator",
        "witness_2": "clinician2",
        "photos": f"@{photo}",
    }


def test_preflight_refuses_a_consent_photo_that_is_not_an_image_and_stores_nothing(session_for, tmp_path):
    s = session_for("clinician")
    before = _counts(s.store)
    with pytest.raises(ValidationFailed) as refused:
        workflow.preflight(s, "consent", _consent(_not_a_photo(tmp_path)))
    assert "consent-page.jpg" in refused.value.problems["photos"]
    assert _counts(s.store) == before


def test_preflight_passes_a_good_consent_without_a_password_and_stores_nothing(session_for, tmp_path):
    s = session_for("clinician")
    before = _counts(s.store)
    prep = workflow.preflight(s, "consent", _consent(photo_file(tmp_path, "signed consent")))
    assert prep.problems == {} and prep.subject == "participant:WUH01-002"
    assert _counts(s.store) == before


def test_preflight_refuses_a_witness_who_may_not_witness(session_for, tmp_path):
    s = session_for("clinician")
    raw = {**_consent(photo_file(tmp_path, "signed consent")), "witness_2": "pharmacist"}
    with pytest.raises(ValidationFailed) as refused:
        workflow.preflight(s, "consent", raw)
    assert "witnesses are study doctors" in refused.value.problems["witness_2"]


def test_cli_consent_with_a_non_image_photo_refused_before_any_signature_is_asked(cli, asked, tmp_path):
    """Before: the doctor's and the witnesses' passwords were asked, then the photo refused."""
    env = {"WARDCRF_PASSWORD_INVESTIGATOR": PASSWORD, "WARDCRF_PASSWORD_CLINICIAN2": PASSWORD}
    raw = [f"{k}={v}" for k, v in _consent(_not_a_photo(tmp_path)).items()]
    r = cli("submit", "consent", *raw, user="clinician", env=env)
    assert r.code == 1, r.err
    assert "consent-page.jpg" in r.err
    assert asked.prompts == []
    assert "WUH01-002" not in cli("participant", "list", "--json", user="clinician").out


def test_signoff_preflight_names_the_missing_ae_forms_before_the_password(session_for, tmp_path):
    from test_workflow_dosing import P1, _ae, _checked

    ward = make_ward(session_for, tmp_path)
    _checked(ward, "fever")  # a prespecified event reported after dose 1, no AE form yet
    with pytest.raises(Refused, match=f"cannot sign off {P1}: adverse event form"):
        workflow.preflight(ward.inv, "signoff", {}, participant=P1)
    assert workflow.show(ward.clin, P1)["signoff"]["state"] == "not signed"
    _ae(ward)
    assert workflow.preflight(ward.inv, "signoff", {}, participant=P1).subject == f"participant:{P1}"
