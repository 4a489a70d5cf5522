"""Minisign signatures in the prehashed ("ED") form only.

minisign's legacy form ("Ed") signs the raw bytes; the prehashed form signs
their BLAKE2b-512 digest and is what `minisign -H` produces and checks. A
verifier that accepts both can be downgraded, so wardcrf signs and accepts
only prehashed signatures (../shared/BUNDLE-FORMAT.md, "Rules on import").
`minisign` is imported inside the functions: it is not needed at TUI start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wardcrf.devicekeys import minisign_key_id
from wardcrf.errors import Refused

UNTRUSTED = "signature from wardcrf secret key"


@dataclass(frozen=True)
class ParsedSignature:
    key_id: str
    trusted_comment: str
    prehashed: bool
    raw: bytes


def sign(secret_b64: str, data: bytes, trusted_comment: str) -> bytes:
    """A prehashed minisign signature file (4 lines, trailing newline) over `data`."""
    import minisign

    sk = minisign.SecretKey.from_base64(secret_b64)
    sig = sk.sign(data, prehash=True, untrusted_comment=UNTRUSTED, trusted_comment=trusted_comment)
    return bytes(sig) + b"\n"


def sign_digest(secret_b64: str, blake2b_digest: bytes, trusted_comment: str) -> bytes:
    """`sign` for data whose BLAKE2b-512 digest was computed while it was produced.

    Exactly what minisign's prehashed signing does after hashing (Ed25519 over
    the digest, then over signature + trusted comment), so a bundle is hashed
    once as it is encrypted instead of read again.
    """
    import minisign
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from minisign.algo import SignatureAlgorithm

    if len(blake2b_digest) != 64:
        raise ValueError("a minisign prehash is a 64-byte BLAKE2b-512 digest")
    sk = minisign.SecretKey.from_base64(secret_b64)
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(sk._keynum_sk.secret_key))
    signature = key.sign(blake2b_digest)
    sig = minisign.Signature(
        _untrusted_comment=UNTRUSTED,
        _signature_algorithm=SignatureAlgorithm.PREHASHED_ED_DSA,
        _key_id=bytes(sk._keynum_sk.key_id),
        _signature=signature,
        _trusted_comment=trusted_comment,
        _global_signature=key.sign(signature + trusted_comment.encode()),
    )
    return bytes(sig) + b"\n"


def ed25519_private(secret_b64: str) -> Any:
    """The Ed25519 key inside a minisign secret key (to sign C2SP notes with the same identity)."""
    import minisign
    from cryptography.hazmat.primitives.asymmetric import ed25519

    sk = minisign.SecretKey.from_base64(secret_b64)
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(sk._keynum_sk.secret_key))


def ed25519_public(public_b64: str) -> bytes:
    """The raw 32-byte Ed25519 key of a minisign public key ("Ed" || key id || key, base64)."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(public_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("hub public key: not base64") from None
    if len(raw) != 42 or raw[:2] != b"Ed":
        raise Refused("hub public key: not a minisign Ed25519 public key")
    return raw[10:]


def parse(sig_bytes: bytes, what: str) -> ParsedSignature:
    """Read a .minisig file; refuse anything that is not a prehashed signature."""
    import minisign

    if not sig_bytes.strip():
        raise Refused(f"{what}: signature file is empty")
    try:
        sig = minisign.Signature.from_bytes(sig_bytes)
    except Exception as exc:
        raise Refused(f"{what}: not a minisign signature ({exc})") from None
    if not sig.is_prehashed():
        raise Refused(
            f"{what}: legacy (non-prehashed 'Ed') minisign signature refused; "
            "only prehashed 'ED' signatures (minisign -H) are accepted"
        )
    key_id = sig._key_id[::-1].hex().upper()
    return ParsedSignature(key_id, sig.trusted_comment, True, sig_bytes)


def verify(public_b64: str, data: bytes | Any, sig_bytes: bytes, what: str) -> ParsedSignature:
    """Check a prehashed signature over `data` (bytes, or a reader hashed as it is read) with one public key."""
    import minisign

    parsed = parse(sig_bytes, what)
    want = minisign_key_id(public_b64)
    if parsed.key_id != want:
        raise Refused(f"{what}: signed by key {parsed.key_id}, expected {want}")
    pk = minisign.PublicKey.from_base64(public_b64)
    try:
        pk.verify(data, minisign.Signature.from_bytes(sig_bytes))
    except Exception:
        raise Refused(f"{what}: bad signature (the signed bytes were changed or the key differs)") from None
    return parsed
