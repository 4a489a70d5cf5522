"""The unblinding key behind the key slots of roles that may unblind (issue 20; wardcrf/unblindkeys.py).

The database key alone, or the password of an auditor, a clinician or an
admin, opens no blinded arm; an investigator's password does, offline; an
investigator added later gets it at the next sign-in of one who holds it.
"""

from __future__ import annotations

import json

import pyrage
import pytest
from rand_support import PW, Trial, bare_trial, blinded_two_to_one, send_ward_bundle, site, trial, unblind

from wardcrf import devicekeys, sessionkeys, unblindkeys, users
from wardcrf.errors import PermissionDenied, Refused
from wardcrf.randomization import sealing, service
from wardcrf.site import Site

__all__ = ["bare_trial", "site", "trial"]
pytestmark = pytest.mark.ward("palm007")  # the blinded 2:1 lists are PALM007's: taken by its participants


def _blinded(trial: Trial, session_for) -> tuple[str, dict]:
    made = trial.make(blinded_two_to_one(), per_stratum=3)
    pid = trial.participant()
    service.allocate(session_for("clinician"), pid)
    admin = session_for("admin")
    line = admin.store.scalar("SELECT line FROM events WHERE id = ?", (made.event.id,))
    return pid, json.loads(line)["body"]


def _slots(site: Site):
    """The key slot file as it is on disk now (each sign-in opens the site afresh)."""
    return Site.open(site.data_dir).slots


def _opens(identity: str, body: dict) -> bool:
    try:
        sealing.open_key(body["unblind_key"], identity, "unblinding key")
    except Refused:
        return False
    return True


def test_a_blinded_list_waits_for_the_laptops_unblinding_key(bare_trial: Trial, session_for) -> None:
    hs = bare_trial.hub_session()
    try:
        with pytest.raises(Refused, match=rf"laptop {bare_trial.device} has not sent its unblinding key yet"):
            service.make_list(hs, blinded_two_to_one(), "WUH01", bare_trial.device, 3)
        assert hs.store.scalar("SELECT COUNT(*) FROM rand_lists") == 0
    finally:
        hs.close()
    # an open-label list needs none
    from rand_support import OPEN_FOUR

    bare_trial.make(OPEN_FOUR, per_stratum=2)
    bare_trial.publish_unblinding_key()  # the investigator signs in once; the ward syncs
    made = bare_trial.make(blinded_two_to_one(), per_stratum=3)
    ws = session_for("admin")
    published = ws.store.scalar("SELECT recipient FROM rand_unblinding_keys")
    body = json.loads(ws.store.scalar("SELECT line FROM events WHERE id = ?", (made.event.id,)))["body"]
    assert body["unblind_recipient"] == published


def test_the_database_key_and_other_roles_passwords_do_not_open_the_arms(
    trial: Trial, session_for, site: Site
) -> None:
    pid, body = _blinded(trial, session_for)
    admin = session_for("admin")
    # Everything the database holds, read with the database key: the laptop's own age identity does
    # not open the unblinding key, and no unblinding secret is stored in it.
    keys = devicekeys.load(admin.store, admin.ctx.device)
    assert keys is not None and not _opens(keys.age_identity, body)
    with pytest.raises(Refused, match="the unblinding key was not sealed for this key; nothing was opened"):
        sealing.open_key(body["unblind_key"], keys.age_identity, "unblinding key")
    for table in ("device_keys", "rand_lists", "rand_unblinding_keys"):
        for row in admin.store.rows(f"SELECT * FROM {table}"):
            assert "AGE-SECRET-KEY" not in json.dumps(row, default=str).replace(keys.age_identity, ""), table
    # The key slot file holds no identity in clear either.
    assert "AGE-SECRET-KEY" not in _slots(site).path.read_text("utf-8")
    for user in ("admin", "auditor", "clinician", "coordinator", "pharmacist"):
        opened = _slots(site).open_with_password(user, PW)
        assert opened is not None and opened.unblinding is None, user
    for user in ("auditor", "clinician", "admin"):
        s = session_for(user)
        assert sessionkeys.unblinding_identity(s) is None
        with pytest.raises(PermissionDenied):
            unblindkeys.identity_for(s)
        with pytest.raises(PermissionDenied):
            unblind(s, pid)
    assert admin.store.scalar("SELECT COUNT(*) FROM rand_unblindings") == 0


def test_the_investigators_password_opens_it_offline(trial: Trial, session_for, site: Site) -> None:
    pid, body = _blinded(trial, session_for)
    opened = _slots(site).open_with_password("investigator", PW)
    assert opened is not None and opened.unblinding is not None
    assert _opens(opened.unblinding.decode("ascii"), body)
    u = unblind(session_for("investigator"), pid)
    assert u.arm in ("TECOVIRIMAT", "PLACEBO")


def test_an_investigator_added_later_gets_the_key_at_the_next_sign_in_of_one_who_holds_it(
    trial: Trial, session_for, site: Site
) -> None:
    pid, _body = _blinded(trial, session_for)
    users.add_user(session_for("admin"), "inv2", "Second Investigator", "investigator", PW)
    users.add_user(session_for("admin"), "clin9", "Another Clinician", "clinician", PW)
    assert _slots(site).data["slots"]["user:inv2"].get("inbox")
    assert not _slots(site).data["slots"]["user:clin9"].get("inbox")  # a role that may not unblind: no inbox
    newcomer = session_for("inv2")
    with pytest.raises(Refused, match=r"does not carry this laptop's unblinding key yet: .*\(investigator\)"):
        unblind(newcomer, pid, witness="clinician2")
    assert newcomer.store.scalar("SELECT COUNT(*) FROM events WHERE type = 'randomization.unblinded'") == 0
    session_for("investigator")  # a holder signs in: the key is boxed to inv2's inbox, and to nobody else
    assert _slots(site).carries_unblinding("user:inv2") and not _slots(site).carries_unblinding("user:clin9")
    assert _slots(site).open_with_password("clin9", PW).unblinding is None
    later = session_for("inv2")  # inv2 takes it, wrapped under their own slot key from now on
    assert _slots(site).data["slots"]["user:inv2"].get("unblinding")
    assert not _slots(site).data["slots"]["user:inv2"].get("unblinding_box")
    u = unblind(later, pid)
    assert u.arm in ("TECOVIRIMAT", "PLACEBO")


def test_an_investigator_changing_their_password_keeps_the_key(trial: Trial, session_for, site: Site) -> None:
    _pid, body = _blinded(trial, session_for)
    inv = session_for("investigator")
    users.change_password(inv, "investigator", "another-password-2")
    opened = _slots(site).open_with_password("investigator", "another-password-2")
    assert opened is not None and opened.unblinding is not None and _opens(opened.unblinding.decode(), body)


def test_the_recovery_slot_receives_the_key_as_a_box(trial: Trial, session_for, site: Site) -> None:
    _blinded(trial, session_for)
    assert _slots(site).carries_unblinding("recovery")
    assert "unblinding" not in _slots(site).data["slots"]["recovery"]  # only the recovery key opens its box


def test_a_laptop_may_publish_only_its_own_unblinding_key(trial: Trial, session_for) -> None:
    inv = session_for("investigator")
    other = str(pyrage.x25519.Identity.generate().to_public())
    with (
        pytest.raises(Refused, match="publishes an unblinding key for device ZZZZ; refused"),
        inv.store.transaction(),
    ):
        inv.append(
            type="randomization.unblinding_key",
            subject="device:ZZZZ",
            body={"device": "ZZZZ", "recipient": other},
        )
    clin = session_for("clinician")
    refused = r"role clinician may not originate randomization\.unblinding_key"
    with pytest.raises(Refused, match=refused), clin.store.transaction():
        clin.append(
            type="randomization.unblinding_key",
            subject=f"device:{clin.ctx.device}",
            body={"device": clin.ctx.device, "recipient": other},
        )
    send_ward_bundle(trial)  # and nothing held at the hub


def test_a_crash_between_the_slot_and_the_event_is_mended_at_the_next_sign_in(
    bare_trial: Trial, session_for, site: Site
) -> None:
    """The slot is written first; a sign-in that finds an identity nobody published publishes it."""
    slots = _slots(site)
    opened = slots.open_with_password("investigator", PW)
    assert opened is not None and opened.unblinding is None
    identity = str(pyrage.x25519.Identity.generate())
    with slots.locked():
        slots.add_unblinding_wrap(opened.slot, opened.kek, identity.encode("ascii"))
    inv = session_for("investigator")
    assert sessionkeys.unblinding_identity(inv) == identity.encode("ascii")
    recipient = str(pyrage.x25519.Identity.from_str(identity).to_public())
    assert inv.store.scalar("SELECT recipient FROM rand_unblinding_keys") == recipient
    session_for("investigator")  # published once, not again
    assert inv.store.scalar("SELECT COUNT(*) FROM events WHERE type = 'randomization.unblinding_key'") == 1
