"""A preparation at the pharmacy signed later (docs/coldchain.md, "Signing later"): when an amendment of the
preparation record invalidates its pharmacist's signature ("changed since signed"), the custody gate refuses
the kit, and only that pharmacist can put it right, by signing it again — an audited event (a
`signature.applied` in their own name and password), as a receipt's or handover's party signs later
(`services.sign_transfer`, `wardcrf coldchain sign EVENT`, the cold-chain screen's `s`).

Before, nothing could sign a preparation after it was recorded: the kit stayed undosable.
On the PALM variant whose ZMapp is prepared at the pharmacy (`tests/palm_pharmacy.py`).
"""

from __future__ import annotations

import pytest
from site_users import PASSWORD
from test_coldchain_pharmacy import DOSE, ph, prepare, stored, to_bedside  # noqa: F401 (ph: the fixture)

from wardcrf import records, signatures, users
from wardcrf.coldchain import custody, reports, services
from wardcrf.errors import AuthError, Refused


def _amended(ph, tmp_path):  # noqa: F811
    """Z1 prepared, handed to the bedside, then its preparation record amended: the signature no longer holds."""
    unit = stored(ph, tmp_path)
    rec = prepare(ph)
    to_bedside(ph, "Z1", unit)
    custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")  # signed: the gate passes
    records.amend(ph, rec.event.id, {"end": "2020-03-16T00:05:00Z"}, "the end was typed 5 min early")
    [sig] = signatures.for_target(ph.store, rec.event.id)
    assert not sig.valid
    with pytest.raises(
        Refused, match=f"its preparation at the pharmacy {rec.event.id} is changed since signed"
    ):
        custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")
    return rec.event.id


def test_the_pharmacist_signs_the_amended_preparation_later_and_the_kit_may_be_given(ph, tmp_path) -> None:  # noqa: F811
    event_id = _amended(ph, tmp_path)
    [pending] = [p for p in reports.pending_signatures(ph.store) if p["kind"] == "preparation"]
    assert (pending["event_id"], pending["user"], pending["meaning"], pending["state"]) == (
        event_id,
        "pharmacist",
        "authored",
        "changed since signed",
    )
    assert pending["kits"] == ["Z1"]
    before = int(ph.store.scalar("SELECT count(*) FROM events"))
    signed = services.sign_transfer(ph, event_id, PASSWORD)  # the one "sign" the CLI and the screen call
    assert signed.type == "signature.applied" and signed.body["meaning"] == "authored"
    assert int(ph.store.scalar("SELECT count(*) FROM events")) == before + 1  # one audited event, appended
    assert any(s.valid and s.user == "pharmacist" for s in signatures.for_target(ph.store, event_id))
    custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")  # accepted again
    assert not [p for p in reports.pending_signatures(ph.store) if p["kind"] == "preparation"]
    with pytest.raises(Refused, match=f"pharmacist already signed {event_id} as authored"):
        services.sign_preparation(ph, event_id, PASSWORD)


def test_only_the_pharmacist_who_prepared_it_signs_it(ph, tmp_path, session_for, admin) -> None:  # noqa: F811
    event_id = _amended(ph, tmp_path)
    users.add_user(admin, "pharmacist2", "Second Pharmacist", "pharmacist", PASSWORD)
    before = int(ph.store.scalar("SELECT count(*) FROM events"))
    with pytest.raises(Refused, match=f"pharmacist2 did not record preparation {event_id}: only pharmacist"):
        services.sign_preparation(session_for("pharmacist2"), event_id, PASSWORD)
    with pytest.raises(Refused, match="clinician did not record preparation"):
        services.sign_transfer(session_for("clinician"), event_id, PASSWORD)
    with pytest.raises(AuthError):
        services.sign_preparation(ph, event_id, "wrong password")
    with pytest.raises(Refused, match="is not a preparation at the pharmacy"):
        services.sign_preparation(ph, "EV-NOT-ONE\x1b[2J", PASSWORD)
    with pytest.raises(Refused, match="is not a receipt, handover or preparation"):
        services.sign_transfer(ph, "EV-NOT-ONE", PASSWORD)
    # a pharmacist who left (deactivated) signs nothing any more, even with their password
    users.deactivate(admin, "pharmacist", "left the site")
    with pytest.raises(Refused, match="pharmacist is not an active user of this site"):
        services.sign_preparation(session_for("clinician"), event_id, PASSWORD, signer="pharmacist")
    sigs = signatures.for_target(ph.store, event_id)
    assert len(sigs) == 1 and not sigs[0].valid  # the refusals signed nothing: only the invalidated signature
    added = [r[0] for r in ph.store.execute("SELECT type FROM events ORDER BY rowid")][before:]
    assert "signature.applied" not in added and "record.submitted" not in added, added


def test_cli_sign_signs_a_preparation_later(ph, tmp_path, cli) -> None:  # noqa: F811
    event_id = _amended(ph, tmp_path)
    refused = cli("coldchain", "sign", event_id, user="clinician")
    assert refused.code == 1 and refused.err.count("\n") == 1, refused.err
    assert "only pharmacist, who prepared it, signs it" in refused.err
    r = cli("coldchain", "sign", event_id, user="pharmacist")
    assert r.code == 0, r.err
    assert f"Signed {event_id}" in r.out
    custody.check_dose(ph.store, "Z1", DOSE, product="ZMAPP")
