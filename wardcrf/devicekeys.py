"""Device key pairs: Ed25519 (minisign) for signing bundles, X25519 (age) for receiving.

Generated at `init` with random ids and kept only inside the encrypted
database, so a cloned disk image that is re-initialised is a new device, and
a stolen laptop's keys are as safe as its records.

The minisign secret signs *as the device*: a bundle it signs is believed by
the hub. Every signed-in user can open the database, so the secret is not
stored there in clear: it is sealed (AES-256-GCM) under a separate *signing
key* that only the key slots of roles allowed ``device.sign`` carry
(`keyslots`). `signer` unseals it for a session of such a role, for the
export and sync services; a session of any other role gets `PermissionDenied`,
and its user's password opens nothing that unseals it. The age identity
stays in the database as it was: it decrypts bundles addressed to this
device, whose content every signed-in user may read here anyway.

Sites created before the seal existed hold the secret in clear; the first
sign-in of a role that may sign seals it (`settle_signing_key`), keeping the
same key pair, so the device's identity at the hub does not change.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import roles, sessionkeys
from .clock import iso_utc, now_utc
from .errors import Refused
from .keyslots import RECOVERY_SLOT
from .store import Store

if TYPE_CHECKING:
    from .keyslots import KeySlots, Opened
    from .site import Session

SEALED_PREFIX = "sealed:v1:"
SIGN_ACTION = "device.sign"


@dataclass(frozen=True, repr=False)
class DeviceKeys:
    """A freshly generated key pair, secret in clear: exists only until `create` seals it."""

    device: str
    sign_secret: str  # minisign secret key, base64
    sign_public: str  # minisign public key, base64 (the line in a .pub file)
    key_id: str  # minisign key id, 16 hex digits
    age_identity: str  # AGE-SECRET-KEY-1...
    age_recipient: str  # age1...


@dataclass(frozen=True)
class StoredKeys:
    """A device's keys as the database holds them: the signing secret sealed."""

    device: str
    sealed_secret: str  # SEALED_PREFIX + base64(nonce | AES-GCM ciphertext); in clear on unsealed old sites
    sign_public: str
    key_id: str
    age_identity: str
    age_recipient: str


@dataclass(frozen=True, repr=False)
class DeviceSigner:
    """The device's minisign secret, unsealed for one export or sync service call chain.

    Only `signer` makes one, for a role allowed ``device.sign``. Its repr
    withholds the secret, so it never lands in a log or a traceback.
    """

    device: str
    key_id: str
    sign_public: str
    minisign_secret: str

    def __repr__(self) -> str:
        return f"DeviceSigner(device={self.device!r}, key_id={self.key_id!r}, secret withheld)"


def generate(device: str) -> DeviceKeys:
    import minisign
    import pyrage

    pair = minisign.KeyPair.generate()
    pub_b64 = pair.public_key.to_base64().decode("ascii")
    ident = pyrage.x25519.Identity.generate()
    return DeviceKeys(
        device=device,
        sign_secret=pair.secret_key.to_base64().decode("ascii"),
        sign_public=pub_b64,
        key_id=minisign_key_id(pub_b64),
        age_identity=str(ident),
        age_recipient=str(ident.to_public()),
    )


def minisign_key_id(public_b64: str) -> str:
    """The key id minisign prints (16 upper-case hex digits, little-endian bytes)."""
    raw = base64.b64decode(public_b64)
    return raw[2:10][::-1].hex().upper()


def new_signing_key() -> bytes:
    """256 random bits that seal the device signing secret (wrapped in the signing roles' slots)."""
    return secrets.token_bytes(32)


def _aad(device: str) -> bytes:
    return f"wardcrf device signing secret|{device}".encode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def seal(secret_b64: str, signing_key: bytes, device: str) -> str:
    nonce = secrets.token_bytes(12)
    box = AESGCM(signing_key).encrypt(nonce, secret_b64.encode("ascii"), _aad(device))
    return SEALED_PREFIX + base64.b64encode(nonce + box).decode("ascii")


def unseal(sealed: str, signing_key: bytes, device: str) -> str:
    """The minisign secret; `Refused` when this signing key does not open it."""
    try:
        raw = base64.b64decode(sealed[len(SEALED_PREFIX) :], validate=True)
        return AESGCM(signing_key).decrypt(raw[:12], raw[12:], _aad(device)).decode("ascii")
    except (InvalidTag, ValueError):
        raise Refused(
            f"the signing key of your key slot does not open device {device}'s signing secret"
            " (the key slots and the database do not belong together); nothing was signed"
        ) from None


def create(store: Store, device: str, signing_key: bytes) -> StoredKeys:
    """Generate the device's key pairs and store them, the signing secret sealed."""
    keys = generate(device)
    stored = StoredKeys(
        keys.device,
        seal(keys.sign_secret, signing_key, device),
        keys.sign_public,
        keys.key_id,
        keys.age_identity,
        keys.age_recipient,
    )
    store.execute(
        "INSERT INTO device_keys (device, sign_secret, sign_public, key_id, age_identity,"
        " age_recipient, created_at) VALUES (?,?,?,?,?,?,?)",
        (
            stored.device,
            stored.sealed_secret,
            stored.sign_public,
            stored.key_id,
            stored.age_identity,
            stored.age_recipient,
            iso_utc(now_utc()),
        ),
    )
    return stored


def load(store: Store, device: str) -> StoredKeys | None:
    """The device's public keys, age identity and sealed signing secret."""
    row = store.one(
        "SELECT device, sign_secret, sign_public, key_id, age_identity, age_recipient"
        " FROM device_keys WHERE device = ?",
        (device,),
    )
    return StoredKeys(*row) if row else None


def signer(session: Session) -> DeviceSigner:
    """This device's signing secret, for the export and sync services of a role that may sign.

    Refused with one line for any other role, and for a user whose key slot
    does not carry the signing key (added before the site was sealed and not
    signed in since, or added by an admin who did not hold it).
    """
    session.require(SIGN_ACTION, what="sign bundles as this device")
    device = session.ctx.device
    stored = load(session.store, device)
    if stored is None:
        raise Refused(f"device {device} has no signing keys")
    if not is_sealed(stored.sealed_secret):
        # A site created before the seal, opened by a sign-in that could not seal it yet.
        return DeviceSigner(device, stored.key_id, stored.sign_public, stored.sealed_secret)
    key = sessionkeys.signing_key(session)
    if key is None:
        raise Refused(
            f"your key slot does not carry device {device}'s signing key; an admin gives it to you"
            f" by setting your password (`wardcrf user passwd {session.user}`)"
        )
    return DeviceSigner(device, stored.key_id, stored.sign_public, unseal(stored.sealed_secret, key, device))


def seal_stored_secret(session: Session, signing_key: bytes) -> bool:
    """Seal a secret an older wardcrf stored in clear; True when it was (an event says so)."""
    device = session.ctx.device
    store = session.store
    with store.transaction():
        stored = load(store, device)
        if stored is None or is_sealed(stored.sealed_secret):
            return False
        store.execute(
            "UPDATE device_keys SET sign_secret = ? WHERE device = ? AND sign_secret = ?",
            (seal(stored.sealed_secret, signing_key, device), device, stored.sealed_secret),
        )
        session.append(
            type="device.signing_key_sealed",
            subject=f"device:{device}",
            body={"device": device, "key_id": stored.key_id},
        )
    return True


def settle_signing_key(session: Session, opened: Opened | None) -> None:
    """At sign-in: hand the signing key to a role that may sign; seal an old site's secret.

    For a site sealed from the start this only takes the key from the user's
    slot. On a site an older wardcrf created (secret in clear, no slot
    carrying a signing key), the first sign-in of a role that may sign makes
    the signing key and saves it in the key slots *before* sealing the
    secret with it in the database: a crash in between leaves a key that
    opens nothing yet, never a sealed secret that no slot opens. Until every
    slot that should carry the key does (every active user of a signing role
    and the recovery slot), the key also sits in a transition wrap that the
    database key opens, which is how the others pick it up.
    """
    if not roles.allowed(session.role, SIGN_ACTION):
        return  # never handed to a role that may not sign, whatever its slot holds
    slots = session.site.slots
    db_key = sessionkeys.database_key(session)
    key = opened.signing if opened is not None else sessionkeys.signing_key(session)
    stored = load(session.store, session.ctx.device)
    legacy = stored is not None and not is_sealed(stored.sealed_secret)
    if opened is not None and key is None and (legacy or slots.in_signing_transition):
        with slots.locked():
            key = slots.signing_from_transition(db_key)
            if key is None and legacy:
                key = new_signing_key()
                slots.set_signing_transition(db_key, key)
            if key is not None:
                slots.add_signing_wrap(opened.slot, opened.kek, key)
    if key is None:
        return
    if legacy:
        seal_stored_secret(session, key)
    sessionkeys.set_signing_key(session, key)
    close_transition_if_complete(slots, session.store)
    if session.role == "admin" and (waiting := transition_waiting(slots, session.store)):
        session.warnings.append(
            "the device signing key is still readable by every signed-in user until these sign in"
            f" once: {', '.join(waiting)} (docs/security.md, keys by role)"
        )


def close_transition_if_complete(slots: KeySlots, store: Store) -> None:
    """Drop the transition wrap once every slot that should carry the signing key does."""
    if not slots.in_signing_transition:
        return
    device = store.scalar("SELECT device FROM site WHERE id = 1")
    stored = load(store, str(device))
    if stored is None or not is_sealed(stored.sealed_secret):
        return
    with slots.locked():
        if not transition_waiting(slots, store):
            slots.drop_signing_transition()


def transition_waiting(slots: KeySlots, store: Store) -> list[str]:
    """Whose sign-in (or the recovery key's check) the transition wrap still waits for."""
    if not slots.in_signing_transition:
        return []
    out = [
        r["username"]
        for r in store.rows("SELECT username, role FROM users WHERE active = 1 ORDER BY username")
        if roles.allowed(r["role"], SIGN_ACTION)
        and slots.has_user(r["username"])
        and not slots.carries_signing(f"user:{r['username']}")
    ]
    if not slots.carries_signing(RECOVERY_SLOT):
        out.append("the recovery key (`wardcrf recover --check`)")
    return out
