"""The ward laptop's unblinding identity, carried only by the key slots of roles that may unblind.

A blinded allocation list seals each kit's arm under an *unblinding key*
(`randomization.sealing`). The hub encrypts that key to this laptop's
**unblinding recipient**, an X25519 (age) pair made on the laptop whose
secret is never stored in the database: it is wrapped in the key slots of
users whose role may unblind (``randomization.unblind``: investigators) and
in the recovery slot, as the device signing secret is wrapped for roles with
``device.sign`` (`devicekeys`). So the database key, and the password of an
auditor, a clinician or an admin, opens no blinded arm, whatever code runs
on the laptop; an investigator's password does, offline.

- **Made** at the first sign-in of an investigator on a ward laptop that
  has none: wrapped into their slot, boxed to the recovery slot, and its
  public recipient published in the ward's chain
  (`randomization.unblinding_key`), which the hub reads at the next sync.
  The hub makes blinded lists for a laptop only once it holds that
  recipient (`randomization.service.make_list`).
- **Handed on** to other slots of roles that may unblind: a slot made for
  such a role (`users.add_user`, a password reset) gets an *inbox* pair,
  its secret under the slot's own key. At every sign-in of a holder the
  identity is boxed (age) to each inbox still waiting; the owner's next
  sign-in opens the box and wraps the identity under their own slot key.
  A user whose role may not unblind never gets an inbox, so never a box.
- **Held** for the session (`sessionkeys`) only for a role that may unblind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from . import authority, sessionkeys
from .keyslots import RECOVERY_SLOT

if TYPE_CHECKING:
    from .keyslots import Opened
    from .site import Session

ACTION = "randomization.unblind"
EVENT = "randomization.unblinding_key"


def _holds(role: str | None) -> bool:
    """May a slot of this role carry the identity? The roles that may publish it (one source: the authority table).

    Asking `roles.allowed` here as well would be a second answer to the same
    question; when the two differed, a sign-in would make an identity whose
    publishing event the append then refuses.
    """
    t = authority.get(EVENT)
    return role is not None and t is not None and role in t.roles


def _recipient_of(identity: bytes) -> str:
    import pyrage

    return str(pyrage.x25519.Identity.from_str(identity.decode("ascii")).to_public())


def published(session: Session) -> str | None:
    """This laptop's unblinding recipient as its chain published it (None: not made yet)."""
    device = session.ctx.device
    row = session.store.one("SELECT recipient FROM rand_unblinding_keys WHERE device = ?", (device,))
    return None if row is None else str(row[0])


def settle(session: Session, opened: Opened | None) -> None:
    """At sign-in: make, take, publish and hand on the unblinding identity (see the module docstring).

    All under the key slots' file lock, so two sign-ins at once on a new
    laptop (the TUI and a command) make one identity, not two.
    """
    if opened is None or not _holds(session.role):
        return
    if session.store.scalar("SELECT kind FROM site WHERE id = 1") != "ward":
        return
    slots = session.site.slots
    with slots.locked():
        identity = opened.unblinding
        public = published(session)
        held_elsewhere = any(slot.get("unblinding") for slot in slots.data["slots"].values())
        if identity is None and public is None and not held_elsewhere:
            import pyrage

            identity = str(pyrage.x25519.Identity.generate()).encode("ascii")
        if identity is None:
            return  # a holder boxes it to this slot at their next sign-in
        recipient = _recipient_of(identity)
        if public is not None and recipient != public:
            session.warnings.append(
                "your key slot's unblinding key is not this laptop's published one; ask the investigator who"
                " holds it to sign in once (docs/randomization.md, threat model)"
            )
            return
        if not slots.data["slots"].get(opened.slot, {}).get("unblinding"):
            slots.add_unblinding_wrap(opened.slot, opened.kek, identity)
        for name in slots.waiting_for_unblinding():
            if name == RECOVERY_SLOT or _may_unblind(session, name):
                slots.put_unblinding_box(name, identity)
        if public is None:  # made now, or made before a crash left it unpublished
            with session.store.transaction():
                session.append(
                    type=EVENT,
                    subject=f"device:{session.ctx.device}",
                    body={"device": session.ctx.device, "recipient": recipient},
                )
    sessionkeys.set_unblinding_identity(session, identity)


def _may_unblind(session: Session, slot_name: str) -> bool:
    row = session.store.one(
        "SELECT role, active FROM users WHERE username = ?", (slot_name.removeprefix("user:"),)
    )
    return row is not None and bool(row[1]) and _holds(str(row[0]))


class SlotTerms(TypedDict):
    inbox: bool
    unblinding: bytes | None


def slot_terms(session: Session, role: str) -> SlotTerms:
    """What a new or reset slot of `role` gets: an inbox for a role that may unblind, and the identity if held."""
    if not _holds(role):
        return {"inbox": False, "unblinding": None}
    return {"inbox": True, "unblinding": sessionkeys.unblinding_identity(session)}


def identity_for(session: Session) -> str:
    """The unblinding identity of this session, for opening a blinded list's unblinding key; refused without it."""
    from .errors import Refused

    session.require(ACTION, what="unblind a participant")
    identity = sessionkeys.unblinding_identity(session)
    if identity is None:
        holders = [
            name.removeprefix("user:")
            for name, slot in session.site.slots.data["slots"].items()
            if name.startswith("user:") and slot.get("unblinding")
        ]
        raise Refused(
            "your key slot does not carry this laptop's unblinding key yet: it is handed on at the next"
            f" sign-in of an investigator who holds it ({', '.join(sorted(holders)) or 'none on this laptop'})"
        )
    return identity.decode("ascii")
