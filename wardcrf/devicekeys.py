"""Device key pairs: Ed25519 (minisign) for signing bundles, X25519 (age) for receiving.

Generated at `init` with random ids and kept only inside the encrypted
database, so a cloned disk image that is re-initialised is a new device, and
a stolen laptop's keys are as safe as its records.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .clock import iso_utc, now_utc
from .store import Store


@dataclass(frozen=True)
class DeviceKeys:
    device: str
    sign_secret: str  # minisign secret key, base64 (unencrypted inside the DB)
    sign_public: str  # minisign public key, base64 (the line in a .pub file)
    key_id: str  # minisign key id, 16 hex digits
    age_identity: str  # AGE-SECRET-KEY-1...
    age_recipient: str  # age1...


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


def create(store: Store, device: str) -> DeviceKeys:
    keys = generate(device)
    store.execute(
        "INSERT INTO device_keys (device, sign_secret, sign_public, key_id, age_identity,"
        " age_recipient, created_at) VALUES (?,?,?,?,?,?,?)",
        (
            keys.device,
            keys.sign_secret,
            keys.sign_public,
            keys.key_id,
            keys.age_identity,
            keys.age_recipient,
            iso_utc(now_utc()),
        ),
    )
    return keys


def load(store: Store, device: str) -> DeviceKeys | None:
    row = store.one(
        "SELECT device, sign_secret, sign_public, key_id, age_identity, age_recipient"
        " FROM device_keys WHERE device = ?",
        (device,),
    )
    return DeviceKeys(*row) if row else None
