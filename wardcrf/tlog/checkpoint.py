"""Checkpoints (c2sp.org/tlog-checkpoint) and offline proofs (c2sp.org/tlog-proof).

A checkpoint is the signed statement "the log called ORIGIN holds SIZE leaves
whose root is ROOT". The hub signs one after every import; a receipt carries
it with the inclusion proof of the ward's bundle as a `tlog-proof`, a small
text file anyone can verify years later with the hub's public key alone. The
ward keeps the last checkpoint it saw and, at its next sync, demands a
consistency proof from it: a hub whose history was rewritten cannot give one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Refused
from . import merkle, note

PROOF_HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, root (and opaque extension lines, which we never write)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text, exactly as signed."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its note text; refuses anything the spec does not allow."""
        note.check_text(text)
        lines = text.split("\n")[:-1]
        if len(lines) < 3 or any(not line for line in lines):
            raise Refused("checkpoint: expected origin, size and root on three non-empty lines")
        origin, size, root = lines[:3]
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise Refused(
                f"checkpoint: tree size {size[:30]!r} is not a decimal number without leading zeros"
            )
        try:
            raw = base64.b64decode(root.encode("ascii"), validate=True)
        except ValueError:
            raise Refused(f"checkpoint: root {root[:60]!r} is not base64") from None
        if len(raw) != merkle.HASH_SIZE:
            raise Refused(f"checkpoint: root of {len(raw)} bytes (SHA-256 roots are {merkle.HASH_SIZE})")
        return cls(origin, int(size), raw, tuple(lines[3:]))

    def sign(self, signer: note.Signer) -> str:
        """The signed note (the log's key name should be the origin)."""
        return note.sign(self.text(), signer)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose note verified against the log's key (and any known witnesses)."""

    checkpoint: Checkpoint
    note: note.Note
    source: str


def open_checkpoint(
    signed: str,
    log: note.Verifier,
    witnesses: Sequence[note.Verifier] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """Verify a signed checkpoint: the log's own signature, and `quorum` of the known witnesses."""
    opened = note.open_note(signed, [log, *witnesses])
    if log not in opened.verified:
        raise Refused(f"checkpoint: not signed by the log {log.name}")
    cp = Checkpoint.parse(opened.text)
    if cp.origin != log.name:
        raise Refused(f"checkpoint: origin {cp.origin!r} is not the log {log.name!r}")
    cosigned = [v for v in opened.verified if v in witnesses]
    if len(cosigned) < quorum:
        raise Refused(f"checkpoint: co-signed by {len(cosigned)} known witness(es), {quorum} required")
    return SignedCheckpoint(cp, opened, signed)


@dataclass(frozen=True)
class Proof:
    """A tlog-proof: leaf index, inclusion path and the signed checkpoint it leads to."""

    index: int
    path: tuple[bytes, ...]
    signed_checkpoint: str
    extra: bytes | None = None

    def text(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.path)
        return "\n".join(lines) + "\n\n" + self.signed_checkpoint

    @classmethod
    def parse(cls, text: str) -> Proof:
        if len(text) > note.MAX_NOTE_BYTES * 2:
            raise Refused("tlog proof: too large")
        head, sep, signed = text.partition("\n\n")
        if not sep:
            raise Refused("tlog proof: no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != PROOF_HEADER:
            raise Refused(f"tlog proof: the first line must be {PROOF_HEADER}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            extra = _b64(rest.pop(0)[6:], "extra")
        if not rest or not rest[0].startswith("index "):
            raise Refused("tlog proof: no 'index N' line")
        idx = rest.pop(0)[6:]
        if not idx.isascii() or not idx.isdigit() or (idx != "0" and idx.startswith("0")):
            raise Refused(f"tlog proof: index {idx[:30]!r} is not a decimal number without leading zeros")
        if len(rest) > 64:
            raise Refused("tlog proof: more than 64 hashes in the path")
        path = tuple(_b64(line, "path hash") for line in rest)
        return cls(int(idx), path, signed, extra)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise Refused(f"tlog proof: {what} {text[:40]!r} is not base64") from None


def verify_proof(
    text: str,
    leaf: bytes,
    log: note.Verifier,
    witnesses: Sequence[note.Verifier] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """Verify an offline tlog-proof for a leaf hash: the checkpoint's signatures, then the inclusion path."""
    proof = Proof.parse(text)
    signed = open_checkpoint(proof.signed_checkpoint, log, witnesses, quorum)
    cp = signed.checkpoint
    merkle.verify_inclusion(proof.index, cp.size, leaf, proof.path, cp.root)
    return signed
