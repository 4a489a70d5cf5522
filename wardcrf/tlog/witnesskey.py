"""A witness's cosigning key on an auditor's laptop: one file, encrypted with a passphrase.

A witness (another hub, a sponsor, an auditor running `wardcrf audit
witness`) needs no site database: its whole state is this key and the last
checkpoint it co-signed. The key is an Ed25519 cosigner key (C2SP type 0x04),
kept as PKCS#8 encrypted with the passphrase (scrypt + AES via
`cryptography`'s best available encryption), inside a small JSON file that
names the witness, so a lost laptop does not hand out the signature.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import AuthError, Refused
from . import note

FORMAT = "wardcrf-witness-key/1"


def create(path: Path, name: str, passphrase: str) -> note.Signer:
    """A new cosigner key written to `path` (mode 0600, never over an existing file)."""
    if len(passphrase) < 12:
        raise Refused("a witness key's passphrase needs at least 12 characters")
    signer = note.Signer(name, Ed25519PrivateKey.generate(), note.COSIGNATURE_V1)
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    doc = {"format": FORMAT, "name": name, "vkey": signer.verifier.vkey, "key": pem.decode()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Refused(f"{path} exists: a witness key is never overwritten") from None
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
        fh.write("\n")
    return signer


def load(path: Path, passphrase: str) -> note.Signer:
    """The cosigner key in `path`; a wrong passphrase is an authentication error (exit 2)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8")[: 64 * 1024])
    except OSError as exc:
        raise Refused(f"witness key {path}: cannot read it ({exc.strerror})") from None
    except ValueError:
        raise Refused(f"witness key {path}: not a witness key file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("key"), str):
        raise Refused(f"witness key {path}: not a {FORMAT} file")
    try:
        key = serialization.load_pem_private_key(doc["key"].encode(), passphrase.encode())
    except (ValueError, TypeError):
        raise AuthError(f"witness key {path}: wrong passphrase, or the file is damaged") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise Refused(f"witness key {path}: not an Ed25519 key")
    return note.Signer(str(doc.get("name", "")), key, note.COSIGNATURE_V1)
