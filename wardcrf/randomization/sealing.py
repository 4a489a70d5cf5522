"""A list sealed for one ward laptop and the hub: one envelope per entry, a signature over the whole.

What travels (the body of a `randomization.list_issued` event, inside a hub
bundle) and who can open what (docs/randomization.md has the threat model):

- every entry is encrypted separately (ChaCha20-Poly1305) under its own key,
  HKDF-SHA256(list key, list | stratum | position); the additional data binds
  the ciphertext to its list, stratum and position, so an envelope moved to
  another slot does not open. Opening one entry derives one key: the ward
  software reveals exactly the entry it allocates, nothing of the others;
- what an entry holds is what the ward may see: the arm (open label) or the
  kit number (blinded), with a salt; its SHA-256 is published beside it, so
  whoever opens it (ward, hub, auditor) checks it is the entry the hub made;
- blinded lists carry a second envelope per entry, the kit's arm, under a
  separate unblinding key, opened only by the emergency-unblinding service;
- the list key and the unblinding key are age-encrypted to the allocating
  laptop's X25519 recipient; the whole plaintext list with its seed is
  age-encrypted to the hub's recipient only (the hub checks allocations with
  it; no ward can read it);
- the body is signed by the hub's minisign key (prehashed), and the signature
  covers every field, so a changed or dropped entry, or a list another key
  signed, is refused on receipt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import Refused
from .lists import AllocationList, Entry, new_seed

FORMAT = "wardrand/1"
NONCE = bytes(12)  # every key seals exactly one message (derived per entry), so a fixed nonce is safe
UNTRUSTED = "wardcrf randomization list"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(f"randomization list: {what} is not base64") from None


def _entry_key(key: bytes, purpose: str, list_id: str, stratum: str, position: int) -> bytes:
    info = f"wardcrf randomization {purpose}|{list_id}|{stratum}|{position}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def _aad(purpose: str, list_id: str, stratum: str, position: int) -> bytes:
    return f"{FORMAT}|{purpose}|{list_id}|{stratum}|{position}".encode()


def revealed(entry: Entry, reveal: str) -> dict[str, Any]:
    """What the ward learns when it allocates this entry: the arm, or (blinded) the kit only."""
    what: dict[str, Any] = {"stratum": entry.stratum, "position": entry.position, "salt": entry.salt}
    if reveal == "kit":
        what["kit"] = entry.kit
    else:
        what["arm"] = entry.arm
    return what


def _unblinded(entry: Entry) -> dict[str, Any]:
    return {
        "stratum": entry.stratum,
        "position": entry.position,
        "kit": entry.kit,
        "arm": entry.arm,
        "salt": entry.salt,
    }


def _seal(key: bytes, purpose: str, list_id: str, payload: dict[str, Any]) -> tuple[str, str]:
    plain = _canonical(payload)
    k = _entry_key(key, purpose, list_id, payload["stratum"], payload["position"])
    box = ChaCha20Poly1305(k).encrypt(
        NONCE, plain, _aad(purpose, list_id, payload["stratum"], payload["position"])
    )
    return hashlib.sha256(plain).hexdigest(), _b64(box)


def open_entry(
    key: bytes, purpose: str, list_id: str, stratum: str, position: int, sealed: str, digest: str
) -> dict[str, Any]:
    """Open one envelope and check it against its published digest; `Refused` if it does not."""
    k = _entry_key(key, purpose, list_id, stratum, position)
    try:
        plain = ChaCha20Poly1305(k).decrypt(
            NONCE, _unb64(sealed, "an entry"), _aad(purpose, list_id, stratum, position)
        )
    except InvalidTag:
        raise Refused(
            f"randomization list {list_id}: entry {position} of stratum {stratum} does not open "
            "(changed, moved or not this laptop's list); nothing allocated"
        ) from None
    if hashlib.sha256(plain).hexdigest() != digest:
        raise Refused(
            f"randomization list {list_id}: entry {position} of stratum {stratum} differs from the hub's digest"
        )
    opened: dict[str, Any] = json.loads(plain)
    if opened.get("stratum") != stratum or opened.get("position") != position:
        raise Refused(
            f"randomization list {list_id}: entry {position} of stratum {stratum} names another slot"
        )
    return opened


def seal(
    alloc: AllocationList,
    seed: bytes,
    *,
    device: str,
    ward_recipient: str,
    hub_recipient: str,
    unblind_recipient: str | None = None,
    sign_secret: str,
    key_id: str,
) -> dict[str, Any]:
    """The signed body of a `randomization.list_issued` event for the laptop `device`."""
    import pyrage

    reveal = alloc.design.reveal
    list_key = new_seed()
    unblind_key = new_seed() if alloc.design.blinded else None
    entries = []
    for e in alloc.entries:
        digest, sealed = _seal(list_key, "entry", alloc.list_id, revealed(e, reveal))
        row: dict[str, Any] = {
            "stratum": e.stratum,
            "position": e.position,
            "digest": digest,
            "sealed": sealed,
        }
        if unblind_key is not None:
            row["arm_digest"], row["arm_sealed"] = _seal(unblind_key, "arm", alloc.list_id, _unblinded(e))
        entries.append(row)
    ward = pyrage.x25519.Recipient.from_str(ward_recipient)
    unblinder = pyrage.x25519.Recipient.from_str(unblind_recipient) if unblind_recipient else ward
    hub = pyrage.x25519.Recipient.from_str(hub_recipient)
    hub_record = {"seed": seed.hex(), "document": json.loads(alloc.document())}
    body: dict[str, Any] = {
        "format": FORMAT,
        **alloc.header(),
        "device": device,
        "list_sha256": alloc.sha256(),
        "entries": entries,
        "list_key": _b64(pyrage.encrypt(list_key, [ward])),
        "unblind_key": _b64(pyrage.encrypt(unblind_key, [unblinder])) if unblind_key is not None else None,
        "for_hub": _b64(pyrage.encrypt(_canonical(hub_record), [hub])),
        "signed_by": key_id,
    }
    if unblind_key is not None and unblind_recipient:
        body["unblind_recipient"] = unblind_recipient
    body["signature"] = _sign(sign_secret, body)
    return body


def _signed_bytes(body: dict[str, Any]) -> bytes:
    return _canonical({k: v for k, v in body.items() if k != "signature"})


def _sign(secret_b64: str, body: dict[str, Any]) -> str:
    import minisign

    sk = minisign.SecretKey.from_base64(secret_b64)
    comment = f"{FORMAT} list={body['list']} site={body['site']} sha256={body['list_sha256']}"
    sig = sk.sign(_signed_bytes(body), prehash=True, untrusted_comment=UNTRUSTED, trusted_comment=comment)
    return bytes(sig).decode("ascii")


def verify(body: dict[str, Any], hub_public: str) -> None:
    """Refuse a list the hub's key did not sign exactly as it is (a changed or dropped entry, another key)."""
    import minisign

    what = f"randomization list {body.get('list')}"
    try:
        sig = minisign.Signature.from_bytes(str(body.get("signature", "")).encode("ascii"))
    except Exception:
        raise Refused(f"{what}: its signature is not a minisign signature; refused") from None
    if not sig.is_prehashed():
        raise Refused(f"{what}: legacy (non-prehashed) signature refused")
    try:
        minisign.PublicKey.from_base64(hub_public).verify(_signed_bytes(body), sig)
    except Exception:
        raise Refused(
            f"{what}: not signed by this ward's hub as it stands (an entry changed or dropped, "
            "or another key signed it); refused, nothing applied"
        ) from None
    positions: dict[str, int] = {}
    for row in body["entries"]:
        want = positions.get(row["stratum"], 0) + 1
        if row["position"] != want:
            raise Refused(
                f"{what}: stratum {row['stratum']} skips from entry {want - 1} to {row['position']}"
            )
        positions[row["stratum"]] = want


def open_key(armored_b64: str, age_identity: str, what: str) -> bytes:
    """A list or unblinding key, age-decrypted with this laptop's identity."""
    import pyrage

    try:
        return bytes(
            pyrage.decrypt(_unb64(armored_b64, what), [pyrage.x25519.Identity.from_str(age_identity)])
        )
    except pyrage.DecryptError:
        raise Refused(
            f"the {what} was not sealed for this key; nothing was opened, allocated or recorded"
        ) from None


def hub_record(body: dict[str, Any], hub_identity: str) -> dict[str, Any]:
    """The hub's own copy: seed and plaintext list (only the hub's identity opens it)."""
    record: dict[str, Any] = json.loads(open_key(body["for_hub"], hub_identity, "hub's copy of the list"))
    document = _canonical(record["document"])
    if hashlib.sha256(document).hexdigest() != body["list_sha256"]:
        raise Refused(f"randomization list {body['list']}: the hub's copy differs from its recorded SHA-256")
    return record
