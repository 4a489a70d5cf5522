"""Check before you sign on the CLI's custody steps (issue 14, finding 5).

`coldchain receive` and `coldchain handover` asked each party's password,
then ran the rules: a handover out of order ("not after its last custody
step") or a receipt without its logger serial was refused after both had
typed. Now `services.preflight` runs first; a refusal comes with no password
asked and nothing saved, and the CLI's message may name its own flags.
"""

from __future__ import annotations

import pytest
from test_check_before_sign import Asked, _counts
from test_coldchain_custody import ARRIVE, PW, STORE, iso, setup_kits

from wardcrf.cli import coldchain_cmds
from wardcrf.coldchain import custody, services


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Asked:
    """The signature prompts of the cold-chain commands (not the sign-in's)."""
    spy = Asked(coldchain_cmds.ask_password)
    monkeypatch.setattr(coldchain_cmds, "ask_password", spy)
    return spy


# -- the CLI's custody steps ------------------------------------------------------------------


def test_cli_handover_out_of_order_refused_before_any_password(cli, session_for, asked, tmp_path):
    """Before: `coldchain handover` asked both parties' passwords, then refused the ordering."""
    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)
    before = _counts(ph.store)
    r = cli(
        "coldchain", "handover", "--kit", "K001", "--at", iso(STORE), "--from", "FRZ-1",
        "--to", "bedside:P-001", "--from-user", "pharmacist", "--to-user", "clinician",
        user="pharmacist", env={"WARDCRF_PASSWORD_CLINICIAN": PW},
    )  # fmt: skip
    assert r.code == 1, r.err
    assert "is not after its last custody step" in r.err
    assert asked.prompts == []
    assert _counts(ph.store) == before


def test_cli_receipt_without_logger_serial_refused_before_any_password_naming_the_flag(
    cli, session_for, asked, tmp_path
):
    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)  # FRZ-1, and lot LOT1 received and stored
    services.add_lot(
        ph, "LOT2", product="haMSC-Exos", expiry="2021-03-31", release_ref="QP-2", kits=["K201"], quantity=1
    )
    before = _counts(ph.store)
    receipt = (
        "coldchain", "receive", "--shipper", "SH2", "--kit", "K201", "--at", iso(ARRIVE),
        "--to", "FRZ-1", "--dry-ice", "--intact", "--frozen", "--courier-user", "coordinator",
    )  # fmt: skip
    r = cli(*receipt, user="pharmacist", env={"WARDCRF_PASSWORD_COORDINATOR": PW})
    assert r.code == 2, r.err
    assert "logger serial" in r.err and "--logger-serial" in r.err  # the CLI's own words name its flag
    assert asked.prompts == []
    assert _counts(ph.store) == before


def test_cli_handover_that_passes_the_checks_asks_and_signs(cli, session_for, asked, tmp_path):
    ph = session_for("pharmacist")
    setup_kits(ph, tmp_path)
    r = cli(
        "coldchain", "handover", "--kit", "K001", "--at", "2020-03-16T08:15", "--from", "FRZ-1",
        "--to", "bedside:P-001", "--from-user", "pharmacist", "--to-user", "clinician",
        user="pharmacist", env={"WARDCRF_PASSWORD_CLINICIAN": PW},
    )  # fmt: skip
    assert r.code == 0, r.err
    assert asked.prompts == ["Your password, to sign", "Password of clinician, to sign"]
    assert "awaiting signature" not in r.out
    assert custody.stays(ph.store, "K001")[-1].location == "bedside:P-001"
