"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys and Ed25519 cosignatures.

A checkpoint is text signed by the hub and, optionally, co-signed by
witnesses (another hub, a sponsor, an auditor's laptop). The format is the
one Go's `golang.org/x/mod/sumdb/note`, Sigsum and the transparency-dev
witnesses use, so an auditor can check a wardcrf checkpoint with those tools,
not only with ours. Followed exactly:

- a note is UTF-8 text ending in a newline, a blank line, then one or more
  lines `— <key name> base64(key id || signature)`; no control character
  other than newline anywhere;
- the key id is SHA-256(name || 0x0A || type || public key)[:4];
- type 0x01 signs the note text with Ed25519; type 0x04 (c2sp.org/
  tlog-cosignature, v1) signs "cosignature/v1\\ntime T\\n" + text and carries
  the 8-byte big-endian time T before the signature;
- a verifier key ("vkey") is `name+hex(key id)+base64(type || public key)`;
- signatures from unknown keys are ignored; a known key's bad signature
  rejects the note; a note with no verified signature is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import Refused

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
SigType = Literal[0x01, 0x04]

MAX_NOTE_BYTES = 64 * 1024
"""The largest note accepted (a checkpoint is ~100 bytes; 100 witness lines fit many times over)."""
MAX_SIGNATURES = 100
"""Signature lines accepted per note (the spec requires at least 16)."""

_DASH = "\u2014 "


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise Refused(f"{what}: {text[:40]!r} is not standard base64") from None


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise Refused(f"key name {name[:60]!r}: must be non-empty, without spaces, '+' or control characters")


def key_id(name: str, sig_type: int, public: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4] (the spec's recommended key id)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A public key a note may be checked with: name, type and the 32-byte Ed25519 key."""

    name: str
    sig_type: int
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public)

    @property
    def vkey(self) -> str:
        """The key as text: name+hex(id)+base64(type || key)."""
        return (
            f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([self.sig_type]) + self.public).decode()}"
        )

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """A verifier from its vkey text; refuses anything the spec does not allow."""
        parts = vkey.strip().split("+", 2)  # the key's base64 may itself hold '+'; the name may not
        if len(parts) != 3:
            raise Refused(f"verifier key {vkey[:60]!r}: expected name+keyid+key")
        name, hex_id, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise Refused(
                f"verifier key {name}: only Ed25519 keys (type 0x01) and cosigners (type 0x04) are supported"
            )
        verifier = cls(name, raw[0], raw[1:])
        if hex_id.lower() != verifier.id.hex() or len(hex_id) != 8:
            raise Refused(f"verifier key {name}: key id {hex_id} does not match the key")
        return verifier


@dataclass(frozen=True)
class Signer:
    """A private Ed25519 key that signs notes (type 0x01) or cosigns checkpoints (type 0x04)."""

    name: str
    key: Ed25519PrivateKey
    sig_type: int = ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.sig_type, _raw_public(self.key.public_key()))

    def signature_line(self, text: str, timestamp: int | None = None) -> str:
        """`— name base64(id || signature)` over `text` (a cosigner also signs `timestamp`)."""
        check_text(text)
        if self.sig_type == COSIGNATURE_V1:
            if timestamp is None or not 0 <= timestamp < 2**63:
                raise Refused("a cosignature needs a POSIX time from 0 to 2^63-1")
            body = struct.pack(">Q", timestamp) + self.key.sign(_cosigned_message(text, timestamp))
        else:
            body = self.key.sign(text.encode("utf-8"))
        return f"{_DASH}{self.name} {base64.b64encode(self.verifier.id + body).decode()}\n"


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def check_text(text: str) -> None:
    """A note's text: non-empty, ending in a newline, no control character but newline."""
    if not text.endswith("\n") or text == "\n":
        raise Refused("note text must be non-empty and end with a newline")
    for i, c in enumerate(text):
        if (ord(c) < 0x20 and c != "\n") or c == "\x7f":
            raise Refused(f"note text: control character U+{ord(c):04X} at position {i} is not allowed")


@dataclass(frozen=True)
class Signature:
    """One signature line: who, which key id, and the raw bytes after the id."""

    name: str
    id: bytes
    body: bytes
    line: str


@dataclass(frozen=True)
class Note:
    """A note whose signatures were checked: its text and what verified it."""

    text: str
    verified: tuple[Verifier, ...]
    timestamps: dict[str, int]
    """Cosigner name -> the time it signed (type 0x04 only)."""
    signatures: tuple[Signature, ...]
    """Every signature line, known or not (a witness adds its own and keeps the others)."""


def split(note: str) -> tuple[str, list[Signature]]:
    """(text, signature lines) of a note, checking the format but no signature."""
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise Refused(f"note: larger than {MAX_NOTE_BYTES} bytes")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused("note: not valid UTF-8") from None
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise Refused("note: no blank line before the signatures, or no final newline")
    text, block = note[: cut + 1], note[cut + 2 :]
    check_text(text)
    lines = block.split("\n")[:-1]
    if not lines:
        raise Refused("note: no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise Refused(f"note: {len(lines)} signatures (at most {MAX_SIGNATURES})")
    sigs = []
    for line in lines:
        if not line.startswith(_DASH):
            raise Refused(f"note: {line[:40]!r} is not a signature line ('— name signature')")
        rest = line[len(_DASH) :]
        name, sep, b64 = rest.partition(" ")
        if not sep or " " in b64:
            raise Refused(f"note: {line[:40]!r} is not a signature line ('— name signature')")
        _check_name(name)
        raw = _b64decode(b64, f"signature of {name}")
        if len(raw) < 5:
            raise Refused(f"note: the signature of {name} is too short")
        for c in line:
            if ord(c) < 0x20 or c == "\x7f":
                raise Refused(f"note: control character U+{ord(c):04X} in the signature of {name}")
        sigs.append(Signature(name, raw[:4], raw[4:], line + "\n"))
    return text, sigs


def open_note(note: str, verifiers: list[Verifier] | tuple[Verifier, ...]) -> Note:
    """Check a note against known keys: unknown signatures ignored, a bad known one refused."""
    text, sigs = split(note)
    known = {(v.name, v.id): v for v in verifiers}
    verified: list[Verifier] = []
    stamps: dict[str, int] = {}
    for sig in sigs:
        v = known.get((sig.name, sig.id))
        if v is None:
            continue
        public = Ed25519PublicKey.from_public_bytes(v.public)
        try:
            if v.sig_type == COSIGNATURE_V1:
                if len(sig.body) != 8 + 64:
                    raise InvalidSignature
                (stamp,) = struct.unpack(">Q", sig.body[:8])
                if stamp >= 2**63:
                    raise InvalidSignature
                public.verify(sig.body[8:], _cosigned_message(text, stamp))
                stamps[v.name] = stamp
            else:
                public.verify(sig.body, text.encode("utf-8"))
        except InvalidSignature:
            raise Refused(
                f"note: the signature of {sig.name} does not verify (the text was changed?)"
            ) from None
        verified.append(v)
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise Refused(f"note: no signature by a known key (known: {names})")
    return Note(text, tuple(verified), stamps, tuple(sigs))


def sign(text: str, *signers: Signer, timestamp: int | None = None) -> str:
    """A note: `text`, a blank line and one signature line per signer."""
    check_text(text)
    return text + "\n" + "".join(s.signature_line(text, timestamp) for s in signers)


def add_signature(note: str, line: str) -> str:
    """The note with one more signature line (a witness's cosignature), the others kept."""
    text, sigs = split(note)
    return text + "\n" + "".join(s.line for s in sigs) + line
