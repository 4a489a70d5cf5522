"""Write and verify bundles in format wardbundle/1 (../shared/BUNDLE-FORMAT.md).

This module is pure: bytes in, bytes out, no database. `write` builds the
tar (manifest, events.jsonl, photos, SHA256SUMS and its signature), encrypts
it with age to the recipients and signs the ciphertext. `verify` runs every
check an importer must run before anything is applied, in the order that
keeps an attacker's bytes away from the parsers longest: outer signature
(with a key from the importer's registry), decryption, archive safety,
inner signature, checksums, manifest, then the event chain. Anything wrong
raises `Refused` with one line saying what.

The archive is deterministic (fixed order, owner, mode and mtime) so that a
bundle rebuilt from the database has the same manifest, SHA256SUMS and
inner signature as the first time; only the age layer differs.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, cast

import msgspec

from wardcrf import canonical, carried, eventbodies
from wardcrf import text as text_rule
from wardcrf.errors import Refused
from wardcrf.eventlog import EVENT_KEYS, Event

from . import signing

FORMAT = "wardbundle/1"
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
SUMS = "SHA256SUMS"
SUMS_SIG = "SHA256SUMS.minisig"
_PHOTO_RE = re.compile(r"^photos/([0-9a-f]{64})\.(jpg|png|heic)$")
# Evidence files (logger exports) travel like photos: flat names, one
# directory level, a short lowercase extension kept only so an auditor sees
# what the file is; the name before it is the SHA-256 of the bytes.
_EVIDENCE_RE = re.compile(r"^evidence/([0-9a-f]{64})\.([a-z0-9]{1,8})$")
_REF_RE = re.compile(r"sha256:([0-9a-f]{64})")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Limits:
    """How much of a bundle an importer reads before refusing it (docs/sync.md, "Limits").

    Each is far above what wardcrf writes (`sync export` cuts bundles at
    100 MB) and low enough that one hostile file cannot exhaust the hub.
    """

    bundle_bytes: int = 512 * 1024 * 1024
    """A `.tar.age` file or HTTP push body (`hub serve --max-body-mb` has the same default)."""
    members: int = 100_000
    """Members of the archive (each photo and logger file is one)."""
    manifest_bytes: int = 1024 * 1024
    sums_bytes: int = 16 * 1024 * 1024
    """SHA256SUMS and its signature."""
    event_line_bytes: int = 8 * 1024 * 1024
    """One event line (a protocol file travels inside one)."""
    events: int = 1_000_000
    """Event lines in one bundle."""


LIMITS = Limits()


def bundle_name(site: str, device: str, bundle_seq: int) -> str:
    return f"{site}-{device}-{bundle_seq:06d}.tar.age"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def photo_refs(lines: list[str]) -> list[str]:
    """SHA-256 digests of the photos these event lines reference or carry, in first-seen order.

    A record or amendment references a photo as ``"sha256:<hex>"``
    (`wardcrf.evidence`); the events that carry a photo otherwise say so
    through the extractors their feature registered (`wardcrf.carried`). The
    writer ships exactly these, and an importer requires exactly these.
    """
    found = carried.extractors(carried.PHOTO)
    if not _mentioned(lines, ["sha256:", *(x.marker for x in found)]):
        return []
    seen: dict[str, None] = {}
    for line in lines:
        if "sha256:" in line:
            for m in _REF_RE.finditer(line):
                seen.setdefault(m.group(1), None)
        for digest in _extracted(line, found):
            seen.setdefault(digest, None)
    return list(seen)


_SCAN_BYTES = 256 * 1024
"""How much of a bundle's lines `_mentioned` joins at once: a scan's memory stays a constant and a line,
never a copy of events.jsonl (verify reads it as a stream; docs/sync.md, "How the bundle is read")."""


def _mentioned(lines: list[str], needles: list[str]) -> bool:
    """False only if no line holds any of `needles`: a scan of the lines joined a run at a time, not a
    step per line.

    A bundle of vitals cites no photo and no file; its thousands of lines need not each be looked
    at twice in Python. Joined by newlines, a needle without one is found in the joined text exactly
    when it is in one of the lines (no match can span the newline between two, and runs end at a
    line's end); a needle holding a newline is never ruled out here (the caller looks line by line, as
    it always did). Runs of about `_SCAN_BYTES`, so the joined text is never the whole file."""
    if any("\n" in n for n in needles):
        return True
    start, n = 0, len(lines)
    while start < n:
        end, size = start, 0
        while end < n and size < _SCAN_BYTES:
            size += len(lines[end]) + 1
            end += 1
        text = "\n".join(lines[start:end])
        if any(needle in text for needle in needles):
            return True
        start = end
    return False


def _extracted(line: str, found: list[carried.Extractor]) -> dict[str, str]:
    """{sha256: name} the extractors whose marker is in `line` find in its body (valid digests only)."""
    hits = [x for x in found if x.marker in line]
    if not hits:
        return {}
    body = _dict(json.loads(line).get("body"))
    out: dict[str, str] = {}
    for x in hits:
        for digest, name in x.extract(body).items():
            if isinstance(digest, str) and _HEX64.match(digest) and isinstance(name, str):
                out.setdefault(digest, name)
    return out


def _dict(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else an empty one (a line's body as a reference search sees it)."""
    return value if isinstance(value, dict) else {}


def evidence_refs(lines: list[str]) -> dict[str, str]:
    """Evidence files these event lines cite: SHA-256 -> the file's original name, first-seen order.

    Which events cite a file (a logger import, a shipment receipt with its
    transit logger's file) is known to the feature that owns them: it
    registers an extractor (`wardcrf.carried`). The files are evidence kept
    by the importing site, so a bundle ships them beside the events that cite
    them and an importer requires them.
    """
    found = carried.extractors(carried.FILE)
    if not _mentioned(lines, [x.marker for x in found]):
        return {}
    seen: dict[str, str] = {}
    for line in lines:
        for digest, name in _extracted(line, found).items():
            seen.setdefault(digest, name)
    return seen


def evidence_ext(name: str) -> str:
    """The member extension for an evidence file: its own, when short and plain, else ``bin``."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext if re.fullmatch(r"[a-z0-9]{1,8}", ext) else "bin"


def trusted_comment(m: dict[str, Any], manifest_sha: str) -> str:
    ev = m["events"]
    return (
        f"{FORMAT} site={m['site']} device={m['device']} seq={m['bundle_seq']} "
        f"events={ev['first']}-{ev['last']} last={m['chain_last']} manifest={manifest_sha}"
    )


# -- writing -----------------------------------------------------------------------


@dataclass
class Contents:
    """What goes into one bundle, before encryption."""

    site: str
    device: str
    key_id: str
    bundle_seq: int
    prev_manifest: str
    lines: list[str]
    photos: dict[str, tuple[str, bytes]]  # sha256 -> (extension, original bytes)
    protocol: dict[str, str] | None
    created: str
    recipients: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # sha256 -> (ext, bytes)

    def manifest(self) -> bytes:
        first = json.loads(self.lines[0])
        last_line = self.lines[-1]
        m: dict[str, Any] = {
            "format": FORMAT,
            "site": self.site,
            "device": self.device,
            "key_id": self.key_id,
            "bundle_seq": self.bundle_seq,
            "prev_manifest": self.prev_manifest,
            "events": {"first": first["seq"], "last": json.loads(last_line)["seq"], "count": len(self.lines)},
            "chain_first_prev": first["prev"],
            "chain_last": canonical.line_hash(last_line),
            "protocol": self.protocol,
            "created": self.created,
            "recipients": sorted(self.recipients),
            "photos": sorted(self.photos),
        }
        if self.evidence:
            m["evidence"] = sorted(self.evidence)
        m.update(self.extra)
        return (canonical.dumps(m) + "\n").encode("utf-8")


def _header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def tar_parts(
    manifest: bytes,
    lines: list[str],
    photos: dict[str, tuple[str, bytes]],
    sign_secret: str,
    evidence: dict[str, tuple[str, bytes]] | None = None,
) -> list[bytes]:
    """The plaintext archive as consecutive pieces (headers, data, padding).

    Byte-identical to what `tarfile` writes in ustar format, but built as a
    list so that large photos are never copied into one buffer: the pieces
    stream straight into age. Photo digests are the photo store's names for
    bytes it hash-checked on read, so they are not hashed a second time here.
    """
    from wardcrf.clock import parse_iso

    m = json.loads(manifest)
    events = ("\n".join(lines) + "\n").encode("utf-8")
    members: list[tuple[str, bytes]] = [(MANIFEST, manifest), (EVENTS, events)]
    digests = {MANIFEST: sha256(manifest), EVENTS: sha256(events)}
    for digest in sorted(photos):
        ext, data = photos[digest]
        members.append((f"photos/{digest}.{ext}", data))
        digests[f"photos/{digest}.{ext}"] = digest
    for digest in sorted(evidence or {}):
        ext, data = (evidence or {})[digest]
        members.append((f"evidence/{digest}.{ext}", data))
        digests[f"evidence/{digest}.{ext}"] = digest
    sums = "".join(f"{digests[name]}  {name}\n" for name, _ in sorted(members)).encode("ascii")
    sums_sig = signing.sign(sign_secret, sums, trusted_comment(m, digests[MANIFEST]))
    mtime = int(parse_iso(m["created"]).timestamp())
    parts: list[bytes] = []
    total = 0
    for name, data in [*members, (SUMS, sums), (SUMS_SIG, sums_sig)]:
        pad = -len(data) % tarfile.BLOCKSIZE
        parts += [_header(name, len(data), mtime), data, bytes(pad)]
        total += tarfile.BLOCKSIZE + len(data) + pad
    total += 2 * tarfile.BLOCKSIZE  # end-of-archive marker, as tar writes it
    parts.append(bytes(2 * tarfile.BLOCKSIZE + (-total % tarfile.RECORDSIZE)))
    return [p for p in parts if p]


def build_tar(
    manifest: bytes,
    lines: list[str],
    photos: dict[str, tuple[str, bytes]],
    sign_secret: str,
    evidence: dict[str, tuple[str, bytes]] | None = None,
) -> bytes:
    """The plaintext archive (deterministic for equal inputs)."""
    return b"".join(tar_parts(manifest, lines, photos, sign_secret, evidence))


class _PartsReader(io.RawIOBase):
    """A file-like view of consecutive byte strings, read without joining them."""

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts
        self._i = 0
        self._off = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n, want = 0, len(buf)
        while n < want and self._i < len(self._parts):
            part = self._parts[self._i]
            take = min(want - n, len(part) - self._off)
            buf[n : n + take] = memoryview(part)[self._off : self._off + take]
            n += take
            self._off += take
            if self._off == len(part):
                self._i += 1
                self._off = 0
        return n


class _HashingSink(io.RawIOBase):
    """Collects age output and its BLAKE2b-512 digest (minisign's prehash) in one pass.

    pyrage encrypts holding the GIL; `hashlib` releases it while it hashes.
    So the sink hands the ciphertext, in batches of a few megabytes, to a
    worker thread that hashes them while pyrage encrypts the next batch: on
    two cores the prehash costs almost nothing beside the encryption (the
    `age` CLI we are measured against does no hashing at all). Batches rather
    than age's 64 KiB chunks because a thread waiting for the GIL gets it
    back only after the interpreter's switch interval (5 ms).

    Given `out` (an export's temp file), each chunk is written there as it
    arrives, on the encrypting thread, instead of being kept: the ciphertext
    is never joined into one 100 MB buffer. Writing from the worker instead
    was measured slower (1.6-2.7x `age` against 1.4-1.6x): each batch then
    needs the GIL back twice, after hashing and after writing, and each wait
    lasts up to the switch interval while pyrage holds it.
    """

    BATCH = 4 << 20

    def __init__(self, out: BinaryIO | None = None, *, inline: bool = False) -> None:
        import queue
        import threading

        self._out = out
        # `inline`: hashed here as each chunk is written, nothing kept (a restore, where
        # memory matters more than the few percent the worker saves).
        self._inline = inline and out is not None
        self.hasher = hashlib.blake2b()
        self.chunks: list[bytes] = []
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._failed: BaseException | None = None
        self.write_error: OSError | None = None
        self._worker = threading.Thread(target=self._hash, name="bundle-prehash", daemon=True)
        self._worker.start()

    def _hash(self) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                self.hasher.update(batch)
        except BaseException as exc:  # handed to finish(); the encrypting thread must not hang
            self._failed = exc

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if self._out is not None:
            try:
                self._out.write(chunk)
            except OSError as exc:  # pyrage wraps what it gets: kept to be raised as it is
                self.write_error = exc
                raise
            if self._inline:
                self.hasher.update(chunk)
                return len(chunk)
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        if self._pending_len >= self.BATCH:
            self._flush_batch()
        return len(chunk)

    def _flush_batch(self) -> None:
        if self._pending:
            batch = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            if self._out is None:
                self.chunks.append(batch)  # the batches are the ciphertext's pieces, in order
            self._queue.put(batch)
            self._pending, self._pending_len = [], 0

    def finish(self) -> bytes:
        """Hash what is left, stop the worker; returns the BLAKE2b-512 digest."""
        self._flush_batch()
        self._queue.put(None)
        self._worker.join()
        if self._failed is not None:
            raise self._failed
        return self.hasher.digest()

    def abandon(self) -> None:
        """Stop the worker after a failed encryption (the digest is not wanted)."""
        self._pending = []
        self._queue.put(None)
        self._worker.join()


def _recipients(recipients: list[str]) -> list[Any]:
    import pyrage

    try:
        return [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception:
        raise Refused("a bundle recipient is not a valid age recipient (age1...)") from None


def encrypt(plain: bytes, recipients: list[str]) -> bytes:
    import pyrage

    return bytes(pyrage.encrypt(plain, _recipients(recipients)))


def encrypt_parts(parts: list[bytes], recipients: list[str]) -> tuple[bytes, bytes]:
    """(age ciphertext, its BLAKE2b-512 digest) of the concatenated parts."""
    sink = _encrypt_into(parts, recipients, None)
    return b"".join(sink.chunks), sink.hasher.digest()


def _encrypt_into(parts: list[bytes], recipients: list[str], out: BinaryIO | None) -> _HashingSink:
    return _encrypt_stream(io.BufferedReader(_PartsReader(parts), 1 << 20), recipients, out)


def _encrypt_stream(
    plain: BinaryIO, recipients: list[str], out: BinaryIO | None, *, inline: bool = False
) -> _HashingSink:
    import pyrage

    recips = _recipients(recipients)
    sink = _HashingSink(out, inline=inline)
    try:
        pyrage.encrypt_io(plain, sink, recips)
    except BaseException:
        sink.abandon()
        if sink.write_error is not None:
            raise sink.write_error from None  # a full or pulled USB stick: the caller words it
        raise
    sink.finish()
    return sink


def seal(
    manifest: bytes,
    lines: list[str],
    photos: dict[str, tuple[str, bytes]],
    sign_secret: str,
    evidence: dict[str, tuple[str, bytes]] | None = None,
) -> tuple[str, bytes, bytes]:
    """(file name, ciphertext, outer signature) of the bundle a manifest describes."""
    m = json.loads(manifest)
    parts = tar_parts(manifest, lines, photos, sign_secret, evidence)
    cipher, digest = encrypt_parts(parts, list(m["recipients"]))
    name = bundle_name(m["site"], m["device"], m["bundle_seq"])
    return name, cipher, _outer_signature(sign_secret, digest, name, manifest)


def seal_into(
    out: BinaryIO,
    manifest: bytes,
    lines: list[str],
    photos: dict[str, tuple[str, bytes]],
    sign_secret: str,
    evidence: dict[str, tuple[str, bytes]] | None = None,
) -> tuple[str, bytes]:
    """`seal`, with the ciphertext written to `out` as it is made; returns (file name, outer signature).

    What an export uses: the bundle streams into its temp file, so a 100 MB
    bundle is neither held twice in memory nor joined before it is written.
    """
    m = json.loads(manifest)
    parts = tar_parts(manifest, lines, photos, sign_secret, evidence)
    sink = _encrypt_into(parts, list(m["recipients"]), out)
    name = bundle_name(m["site"], m["device"], m["bundle_seq"])
    return name, _outer_signature(sign_secret, sink.hasher.digest(), name, manifest)


def _outer_signature(sign_secret: str, digest: bytes, name: str, manifest: bytes) -> bytes:
    return signing.sign_digest(sign_secret, digest, f"{FORMAT} file={name} manifest={sha256(manifest)}")


# -- verifying ---------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """A registered signer, as the importer's own registry knows it."""

    device: str
    site: str
    sign_public: str
    key_id: str
    kind: str = "ward"  # what the registry says it is: what its events may be (`wardcrf.authority`)


@dataclass
class Verified:
    """A bundle that passed every check; nothing has been applied yet."""

    manifest: dict[str, Any]
    manifest_bytes: bytes
    manifest_sha: str
    lines: list[str]
    # Photo sha256 -> (extension, size). The bytes are not held: `parts()` reads them.
    photos: dict[str, tuple[str, int]]
    signer: Signer
    report: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # Logger files: sha256 -> (original file name, member name), hash-checked; bytes from `parts()`.
    evidence: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Member name -> offset of its data in the decrypted archive.
    offsets: dict[str, int] = field(default_factory=dict)
    # Photo and logger-file members -> their SHA-256 as verified (SHA256SUMS and the name).
    digests: dict[str, str] = field(default_factory=dict)
    # Where the verified ciphertext is read again from, and the identities that open it.
    # (An open file when verified from one: a spooled bundle is renamed into place before the apply reads it.)
    source: bytes | BinaryIO = b""
    identities: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Release the verified file, if it was verified from one (the importer is done with it)."""
        if not isinstance(self.source, bytes):
            self.source.close()

    def parts(self) -> Iterator[tuple[str, bytes]]:
        """(member name, bytes) of each photo and logger file, one at a time, in archive order.

        The archive is decrypted again as a stream (`_DecryptStream`); only
        the member being handed out is in memory, never the bundle or all its
        photos. Each is hashed again against the digest verified before, so
        a source changed since (a file rewritten under the importer) is
        refused rather than applied.
        """
        if not self.digests:
            return
        what = f"bundle {self.device}/{self.bundle_seq}"
        left = dict(self.digests)
        with _DecryptStream(self.source, self.identities, what) as stream:
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for info in tar:
                        want = left.pop(info.name, None)
                        if want is None:
                            continue
                        data = _member_bytes(tar, info, what)
                        if sha256(data) != want:
                            raise Refused(f"{what}: {info.name} changed since it was verified")
                        yield info.name, data
                        if not left:
                            break
            except (tarfile.TarError, EOFError, ValueError) as exc:
                stream.check()
                raise Refused(f"{what}: the archive changed since it was verified ({exc})") from None
        if left:
            raise Refused(f"{what}: {sorted(left)[0]} is missing since the bundle was verified")

    @property
    def device(self) -> str:
        return str(self.manifest["device"])

    @property
    def bundle_seq(self) -> int:
        return int(self.manifest["bundle_seq"])


class _Range(msgspec.Struct):
    first: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    last: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    count: Annotated[int, msgspec.Meta(ge=1, le=2**53)]


_Hex64 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
_Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]


class Manifest(msgspec.Struct, kw_only=True):
    """`manifest.json` of wardbundle/1, typed (unknown keys allowed: later additions)."""

    format: Literal["wardbundle/1"]
    site: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    device: _Id
    key_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-F]{16}$")]
    bundle_seq: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    prev_manifest: Annotated[str, msgspec.Meta(pattern=r"^([0-9a-f]{64})?$")]
    events: _Range
    chain_first_prev: _Hex64
    chain_last: _Hex64
    created: datetime
    recipients: list[Annotated[str, msgspec.Meta(max_length=200)]]
    photos: list[_Hex64] = []
    evidence: list[_Hex64] = []
    protocol: dict[str, Annotated[str, msgspec.Meta(max_length=200)]] | None = None
    kind: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    to: _Id | None = None


def decrypt(cipher: bytes, identities: list[str], what: str) -> bytes:
    """The whole plaintext (a hub re-encrypting a kept bundle); import streams instead (`_DecryptStream`)."""
    import pyrage

    ids = _identities(identities, what)
    try:
        return bytes(pyrage.decrypt(cipher, ids))
    except Exception as exc:
        raise _decrypt_refusal(exc, what) from None


def reencrypt_into(
    source: Path, identities: list[str], recipients: list[str], out: BinaryIO, what: str
) -> tuple[bytes, bytes]:
    """A kept bundle's archive encrypted again to `recipients`, written to `out` as it is made.

    Returns (its manifest.json, the BLAKE2b-512 prehash of the new ciphertext,
    for the relay's signature). The archive is decrypted as a stream
    (`_DecryptStream`) straight into age's encryptor: neither the plaintext
    nor either ciphertext is held whole. The manifest is read first, by a
    short pass that stops once it is found (a bundle writes it first). A
    damaged or truncated file is refused as `decrypt` refuses it, after the
    whole of it was read; `out` then holds nothing the caller may keep.
    """
    manifest = _first_manifest(source, identities, what)
    with _DecryptStream(source, identities, what) as stream:
        # Hashed as written (an export's 4 MiB batches would outweigh a small bundle).
        plain = cast(BinaryIO, io.BufferedReader(stream, 256 * 1024))
        sink = _encrypt_stream(plain, recipients, out, inline=True)
        stream.check()  # age's verdict on the whole file: nothing is kept before it
    return manifest, sink.hasher.digest()


def _first_manifest(source: Path, identities: list[str], what: str) -> bytes:
    """manifest.json of an archive, read from its decrypting stream up to that member only."""
    seen: dict[str, int] = {}
    with _DecryptStream(source, identities, what) as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for info in tar:
                    _check_member(info, what, seen)
                    seen[info.name] = info.size
                    if len(seen) > LIMITS.members:
                        raise Refused(f"{what}: the archive has more than {LIMITS.members} members")
                    if info.name == MANIFEST:
                        if info.size > LIMITS.manifest_bytes:
                            raise Refused(
                                f"{what}: manifest.json is larger than {LIMITS.manifest_bytes} bytes"
                            )
                        return _member_bytes(tar, info, what)
        except (tarfile.TarError, EOFError, ValueError) as exc:
            stream.check()
            raise Refused(f"{what}: archive is truncated or not a tar file ({exc})") from None
        stream.check()
    raise Refused(f"{what}: archive lacks {MANIFEST}")


def _decrypt_refusal(exc: BaseException, what: str) -> Refused:
    text = str(exc).lower()
    if "no matching keys" in text or "no identity matched" in text:
        return Refused(f"{what}: cannot decrypt: this age identity is not a recipient of the bundle")
    return Refused(f"{what}: cannot decrypt (truncated, damaged or not an age file)")


def _identities(identities: list[str], what: str) -> list[Any]:
    import pyrage

    try:
        return [pyrage.x25519.Identity.from_str(i) for i in identities]
    except Exception:
        raise Refused(f"{what}: the age identity is not valid (AGE-SECRET-KEY-1...)") from None


class _Stopped(Exception):
    """The reader of a `_DecryptStream` went away: the decryption stops."""


class _DecryptStream(io.RawIOBase):
    """The plaintext of an age file, read while a worker thread decrypts it; never held whole.

    pyrage decrypts into a writer (`decrypt_io`); the worker hands what it
    writes, in batches of `BATCH`, through a queue of `DEPTH` batches to the
    reader here, so at most a few hundred KiB of plaintext are in memory
    whatever the bundle's size. age authenticates each 64 KiB chunk and the
    end of the stream, so a damaged or truncated file fails at the chunk
    concerned or at the end: `check()` (called by `close()`, after the last
    byte was read) raises that as a refusal, and a reader must not act on
    what it read before `check()` passed. `source` is the ciphertext in
    memory or a file to read it from.

    A ciphertext of at most `INLINE` bytes (a ward's usual bundle: a few
    records, no photo) is decrypted in one call on the caller's thread: a
    worker thread and its queue cost more than the decryption itself there,
    and holding up to 1 MiB is within what a bundle's checks hold anyway.
    The reader sees the same stream either way, and a failure the same
    way, at `check()` (what it read before is then empty, so the archive
    walk finds an empty archive; the decryption's refusal is reported first).
    """

    BATCH = 128 * 1024
    DEPTH = 2
    INLINE = 1 << 20

    def __init__(self, source: bytes | Path | BinaryIO, identities: list[str], what: str) -> None:
        import queue
        import threading

        self._ids = _identities(identities, what)
        self._what = what
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.DEPTH)
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._stop = False
        self.error: Refused | None = None
        self.total = 0
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._src: BinaryIO
        if isinstance(source, bytes):
            self._src = io.BytesIO(source)
        elif isinstance(source, Path):
            self._src = open(source, "rb")  # noqa: SIM115 (closed by stop())
        else:  # an open file: read from its start, left open for the next reader
            self._src = open(source.fileno(), "rb", closefd=False)  # noqa: SIM115
            self._src.seek(0)
        self._thread: threading.Thread | None = None
        if _source_size(source) <= self.INLINE:
            self._decrypt_inline(source if isinstance(source, bytes) else self._src.read())
            return
        self._thread = threading.Thread(target=self._run, name="bundle-decrypt", daemon=True)
        self._thread.start()

    def _decrypt_inline(self, cipher: bytes) -> None:
        import pyrage

        try:
            self._buf = pyrage.decrypt(cipher, self._ids)
        except BaseException as exc:  # raised by check(), as the worker's would be
            self.error = _decrypt_refusal(exc, self._what)
        self._eof = True

    def __enter__(self) -> _DecryptStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # The worker's side: pyrage calls write().
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._stop:
            raise _Stopped
        chunk = bytes(data)
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        if self._pending_len >= self.BATCH:
            self._flush()
        return len(chunk)

    def _flush(self) -> None:
        if self._pending:
            self._queue.put(b"".join(self._pending))
            self._pending, self._pending_len = [], 0

    def _run(self) -> None:
        import pyrage

        try:
            pyrage.decrypt_io(self._src, self, self._ids)
            self._flush()
        except BaseException as exc:  # handed to the reader by check(); never lost
            if not self._stop:
                self.error = _decrypt_refusal(exc, self._what)
        finally:
            self._pending = []
            self._queue.put(None)

    # The reader's side.
    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while self._pos >= len(self._buf):
            if self._eof:
                return 0
            item = self._queue.get()
            if item is None:
                self._eof = True
                return 0
            self._buf, self._pos = item, 0
        n = min(len(buf), len(self._buf) - self._pos)
        buf[:n] = memoryview(self._buf)[self._pos : self._pos + n]
        self._pos += n
        self.total += n
        return n

    def check(self) -> None:
        """Read to the end and wait for the worker; raise its refusal (damaged, truncated, wrong key)."""
        while self.readinto(bytearray(self.BATCH)):
            pass
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Stop the worker (unblocking it) and release the source; safe to call twice."""
        self._stop = True
        while not self._eof:
            if self._queue.get() is None:
                self._eof = True
        if self._thread is not None:
            self._thread.join()
        self._buf = b""
        self._src.close()


def _source_size(source: bytes | Path | BinaryIO) -> int:
    """The ciphertext's size in bytes (a file's from its metadata, not by reading it)."""
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, Path):
        return source.stat().st_size
    return os.fstat(source.fileno()).st_size


_PIECE = 64 * 1024


def _member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, what: str) -> bytes:
    """A member's data from a streamed archive, all of it or a refusal."""
    # In pieces: tarfile's stream mode joins and slices what one read asks for, three copies of it.
    f = tar.extractfile(info)
    pieces, n = [], 0
    while f is not None and n < info.size and (piece := f.read(min(_PIECE, info.size - n))):
        pieces.append(piece)
        n += len(piece)
    data = b"".join(pieces) if len(pieces) != 1 else pieces[0]
    del pieces
    if len(data) != info.size:
        raise Refused(f"{what}: member {info.name!r} declares {info.size} bytes, more than the archive holds")
    return data


def _member_sha(tar: tarfile.TarFile, info: tarfile.TarInfo, what: str) -> str:
    """The SHA-256 of a member's data, read in pieces (a photo is never held here)."""
    f = tar.extractfile(info)
    h, n = hashlib.sha256(), 0
    while f is not None and (piece := f.read(_PIECE)):
        h.update(piece)
        n += len(piece)
    if n != info.size:
        raise Refused(f"{what}: member {info.name!r} declares {info.size} bytes, more than the archive holds")
    return h.hexdigest()


def _check_member(info: tarfile.TarInfo, what: str, seen: Any) -> None:
    """Refuse a member that is not a regular, whitelisted, flat file met once (before its data is read)."""
    name = info.name
    if name.startswith("/"):
        raise Refused(f"{what}: member {name!r} has an absolute path")
    if ".." in name.split("/"):
        raise Refused(f"{what}: member {name!r} climbs out with '..'")
    if info.issym() or info.islnk():
        raise Refused(f"{what}: member {name!r} is a link; only regular files are allowed")
    if info.ischr() or info.isblk() or info.isfifo():
        raise Refused(f"{what}: member {name!r} is a device or fifo; only regular files are allowed")
    if not info.isreg():
        raise Refused(f"{what}: member {name!r} is not a regular file")
    if name not in (MANIFEST, EVENTS, SUMS, SUMS_SIG) and not (
        _PHOTO_RE.match(name) or _EVIDENCE_RE.match(name)
    ):
        raise Refused(f"{what}: member {name!r} is not an allowed bundle member")
    if name in seen:
        raise Refused(f"{what}: member {name!r} appears twice")
    if info.size < 0:
        raise Refused(f"{what}: member {name!r} declares {info.size} bytes, more than the archive holds")


# The small members are read whole; over their limit they are refused before a byte is read.
_SMALL_LIMITS = {
    MANIFEST: ("manifest.json is larger than {n} bytes", "manifest_bytes"),
    SUMS: ("SHA256SUMS or its signature is larger than {n} bytes", "sums_bytes"),
    SUMS_SIG: ("SHA256SUMS or its signature is larger than {n} bytes", "sums_bytes"),
}


@dataclass
class _Streamed:
    """What one streamed pass over an archive found: small members whole, the others by digest."""

    members: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    events: _EventLines | None = None


@dataclass
class _EventLines:
    """events.jsonl as read line by line from the stream: the lines, and what the checks need to know.

    Nothing is refused while reading: the verdicts keep their order
    (signatures and checksums first), so what a line-by-line read finds is
    noted here and `_verify_signed` refuses it where it always did.
    """

    lines: list[str] = field(default_factory=list)
    count: int = 0  # lines, the last one counted even without its newline
    sha: str = ""
    not_utf8: bool = False
    ends_newline: bool = False
    # (line number, its first bytes) of a line too long to keep: longer in bytes than
    # four times the limit, so longer in characters than the limit. Later lines are not kept.
    long_line: tuple[int, bytes] | None = None


def _read_events(tar: tarfile.TarFile, info: tarfile.TarInfo, what: str) -> _EventLines:
    """events.jsonl line by line: hashed as it passes, each line decoded and kept, never the member whole.

    A line is read up to four times `LIMITS.event_line_bytes` bytes (a line
    within the limit in characters is at most that); beyond, it is hashed and
    checked as UTF-8 in passing and only its head kept. Past `LIMITS.events`
    lines, or once a line is not UTF-8, no line is kept: the refusal is certain.
    """
    out = _EventLines()
    f = tar.extractfile(info)
    cap = 4 * LIMITS.event_line_bytes + 1
    h = hashlib.sha256()
    n = 0
    keep = True
    while f is not None and n < info.size and (raw := f.readline(cap)):
        n += len(raw)
        h.update(raw)
        out.count += 1
        complete = raw.endswith(b"\n")
        if not complete and len(raw) >= cap:  # a line longer than any kept one: read through, not kept
            head = raw[:256]
            decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                decoder.decode(raw)
                while not complete and n < info.size and (raw := f.readline(cap)):
                    n += len(raw)
                    h.update(raw)
                    complete = raw.endswith(b"\n")
                    decoder.decode(raw)
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                out.not_utf8 = True
                keep = False
            if keep:
                out.long_line = (out.count, head)
                keep = False
            out.ends_newline = complete
            continue
        out.ends_newline = complete
        try:
            line = (raw[:-1] if complete else raw).decode("utf-8")
        except UnicodeDecodeError:
            out.not_utf8 = True
            keep = False
            out.lines = []
            continue
        if out.count > LIMITS.events:
            keep = False
            out.lines = []
        if keep:
            out.lines.append(line)
    if n != info.size:
        raise Refused(f"{what}: member {info.name!r} declares {info.size} bytes, more than the archive holds")
    out.sha = h.hexdigest()
    return out


def _read_stream(stream: _DecryptStream, what: str) -> _Streamed:
    """`read_archive` over a decrypting stream: every member checked, photos and logger files hashed, not kept."""
    out = _Streamed()
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                count += 1
                if count > LIMITS.members:
                    raise Refused(f"{what}: the archive has more than {LIMITS.members} members")
                _check_member(info, what, out.sizes)
                name = info.name
                out.sizes[name] = info.size
                out.offsets[name] = info.offset_data
                if name.startswith(("photos/", "evidence/")):
                    out.digests[name] = _member_sha(tar, info, what)
                    continue
                if name == EVENTS:
                    out.events = _read_events(tar, info, what)
                    continue
                limit = _SMALL_LIMITS.get(name)
                if limit is not None:
                    n = getattr(LIMITS, limit[1])
                    if info.size > n:
                        raise Refused(f"{what}: " + limit[0].format(n=n))
                out.members[name] = _member_bytes(tar, info, what)
    except (tarfile.TarError, EOFError, ValueError) as exc:
        if stream.total == 0:
            raise Refused(f"{what}: archive is empty") from None
        raise Refused(f"{what}: archive is truncated or not a tar file ({exc})") from None
    if count == 0:
        raise Refused(f"{what}: archive is empty")
    return out


def read_archive(plain: bytes, what: str, offsets: dict[str, int] | None = None) -> dict[str, Any]:
    """The members of a bundle archive, refusing anything unsafe before reading data.

    `offsets`, when given, is filled with each member's data offset in
    `plain` (the hub records where a photo sits in the kept bundle).
    """
    if not plain:
        raise Refused(f"{what}: archive is empty")
    infos: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
            while (info := tar.next()) is not None:
                infos.append(info)
                if len(infos) > LIMITS.members:
                    raise Refused(f"{what}: the archive has more than {LIMITS.members} members")
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise Refused(f"{what}: archive is truncated or not a tar file ({exc})") from None
    members: dict[str, Any] = {}
    view = memoryview(plain)
    for info in infos:
        name = info.name
        _check_member(info, what, members)
        if info.offset_data + info.size > len(plain):
            raise Refused(f"{what}: member {name!r} declares {info.size} bytes, more than the archive holds")
        start = info.offset_data
        if offsets is not None:
            offsets[name] = start
        # Photos stay views into the decrypted archive (no copy of the big bytes).
        members[name] = (
            view[start : start + info.size]
            if name.startswith(("photos/", "evidence/"))
            else plain[start : start + info.size]
        )
    return members


def _parse_sums(sums: bytes, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = sums.decode("ascii")
    except UnicodeDecodeError:
        raise Refused(f"{what}: SHA256SUMS is not ASCII") from None
    if not text.endswith("\n"):
        raise Refused(f"{what}: SHA256SUMS is truncated")
    for ln in text.splitlines():
        m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", ln)
        if not m:
            raise Refused(f"{what}: SHA256SUMS line {ln!r} is malformed")
        if m.group(2) in out:
            raise Refused(f"{what}: SHA256SUMS lists {m.group(2)} twice")
        out[m.group(2)] = m.group(1)
    return out


_EVENT_KEYS = frozenset(("prev", *EVENT_KEYS))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid in an event")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_chain(lines: list[str], m: dict[str, Any], what: str) -> list[Event]:
    """Each line canonical, of the manifest's device and site, seqs consecutive, hashes linked.

    Returns the parsed events (each line is parsed once, here).
    """
    return _check_chain(lines, m, what, len(lines), None)


def _check_chain(
    lines: list[str], m: dict[str, Any], what: str, count: int, long_line: tuple[int, bytes] | None
) -> list[Event]:
    """`check_chain` of lines read from a stream: `count` lines in all, the kept ones in `lines`, and
    `long_line` the one not kept for its length (the lines after it were not kept either)."""
    ev = m.get("events") or {}
    if not count:
        raise Refused(f"{what}: events.jsonl holds no events")
    if ev.get("count") != count:
        raise Refused(f"{what}: manifest says {ev.get('count')} events, events.jsonl has {count}")
    prev = m.get("chain_first_prev")
    seq = ev.get("first")
    if not isinstance(prev, str) or not _HEX64.match(prev) or not isinstance(seq, int):
        raise Refused(f"{what}: manifest chain_first_prev or event range is malformed")
    device, site = m["device"], m["site"]
    events: list[Event] = []
    loads, encode, line_hash = _DECODER.decode, _ENCODER.encode, canonical.line_hash
    fast_fields = canonical.canonical_fields
    adopt = Event.adopt
    check_envelope, check_body = eventbodies.envelope_checker(), eventbodies.check_body
    may_hold_refused, longest = text_rule.may_hold_refused, LIMITS.event_line_bytes
    for n, line in enumerate(lines, 1):
        head = '{"prev":"' + prev + '",'
        if not line.startswith(head):
            raise Refused(f"{what}: chain broken at line {n}: prev is not the previous event's hash")
        if len(line) > longest:
            raise Refused(f"{what}: event line {n} is larger than {longest} bytes")
        # The canonical spelling (`canonical.event_line`): shown cheaply where it can be
        # (`canonical.canonical_fields` accepts only lines the standard library spells
        # byte for byte), else decided, and any refusal worded, by the standard library.
        fast = fast_fields(line[len(head) :])
        if fast is not None:
            obj = {"prev": prev, **fast}
        else:
            try:
                obj = loads(line)
                fields = dict(obj)
                del fields["prev"]
                # NaN and Infinity are already refused by the decoder.
                canon = line == head + encode(fields)[1:]
            except RecursionError:
                raise Refused(f"{what}: event line {n} is nested too deeply to read") from None
            except (ValueError, TypeError, KeyError):
                canon = False
            if not canon:
                raise Refused(f"{what}: event line {n} is not canonical JSON")
        if obj.keys() != _EVENT_KEYS:
            raise Refused(f"{what}: event line {n} has missing or unknown keys")
        problem = check_envelope(obj) or check_body(obj["type"], obj["body"] or {})
        if problem:
            t = obj["type"]
            named = (
                t if isinstance(t, str) and t in eventbodies.BODIES else repr(str(t)[:40])
            )  # never raw to a terminal
            raise Refused(f"{what}: event line {n} ({named}): {problem}")
        if may_hold_refused(line):
            # The floor every local append stands on (`eventlog._checked_line`): an event
            # holding a control, bidi or zero-width character was written around wardcrf.
            try:
                for key in ("reason", "subject"):
                    if obj[key] is not None:
                        text_rule.check(obj[key], field=key)
                text_rule.check_stored(obj)
            except text_rule.TextRefused as exc:
                raise Refused(f"{what}: event line {n} ({obj['type']}): {exc}") from None
        if obj["seq"] != seq:
            raise Refused(f"{what}: event line {n} has seq {obj['seq']}, expected {seq}")
        if obj["device"] != device or obj["site"] != site:
            raise Refused(f"{what}: event line {n} belongs to another device or site")
        if obj["id"] != f"{device}-{seq}":
            raise Refused(f"{what}: event line {n} has id {obj['id']!r}, expected {device}-{seq}")
        h = line_hash(line)
        # Its device, site, seq and prev are the ones checked above.
        events.append(adopt(obj, line, h, spelled_alike=fast is not None))
        prev = h
        seq += 1
    if long_line is not None:  # every line before it passed: refused as the loop refuses it
        n, first_bytes = long_line
        if not first_bytes.startswith(('{"prev":"' + prev + '",').encode()):
            raise Refused(f"{what}: chain broken at line {n}: prev is not the previous event's hash")
        raise Refused(f"{what}: event line {n} is larger than {LIMITS.event_line_bytes} bytes")
    if seq - 1 != ev.get("last"):
        raise Refused(f"{what}: manifest says events end at {ev.get('last')}, events.jsonl ends at {seq - 1}")
    if prev != m.get("chain_last"):
        raise Refused(f"{what}: chain_last in the manifest is not the hash of the last event")
    return events


def check_manifest(m: dict[str, Any]) -> str | None:
    """None if a manifest has every key of wardbundle/1 with its type (`Manifest`); else what is wrong."""
    import msgspec

    try:
        parsed = msgspec.convert(m, Manifest)
    except msgspec.ValidationError as exc:
        return str(exc).replace("`$.", "`").replace("`$`", "the manifest")
    ev = parsed.events
    if ev.last < ev.first or ev.count != ev.last - ev.first + 1:
        return f"event range {ev.first}-{ev.last} does not hold {ev.count} events"
    return None


def verify(
    cipher: bytes | Path,
    outer_sig: bytes,
    lookup: Callable[[str], Signer | None],
    identities: list[str],
    what: str = "bundle",
    *,
    relay: Callable[[str], Signer | None] | None = None,
) -> Verified:
    """Every check of BUNDLE-FORMAT.md "Rules on import"; raises `Refused` on the first failure.

    `cipher` is the `.tar.age` bytes, or a file holding them (read as a
    stream: the hub verifies its own spooled copy). `lookup(key_id)` returns
    the registered signer for a minisign key id, or None: keys come from the
    importer's registry, never from the bundle. `relay`, when given, names
    who may sign the outer layer instead of the device: the hub
    re-encrypting a device's original archive for a replacement laptop. The
    inner signature must still be the device's own.

    Nothing is held whole: the outer signature's prehash reads the
    ciphertext on a second thread while the archive is decrypted as a
    stream and walked member by member; photos and logger files are hashed
    as they pass and only their digests kept (`Verified.parts` reads them
    again for the apply). The verdicts keep the sequential order: a bad
    signature is reported first, then a failed decryption (which age
    reports at the damaged chunk or the end), then the archive's trouble.
    """
    import threading

    size = len(cipher) if isinstance(cipher, bytes) else _file_size(cipher, what)
    if not size:
        raise Refused(f"{what}: file is empty")
    if size > LIMITS.bundle_bytes:
        raise Refused(f"{what}: the bundle is larger than {LIMITS.bundle_bytes // (1024 * 1024)} MiB")
    outer = signing.parse(outer_sig, f"{what} (.minisig)")
    outer_signer = (relay or lookup)(outer.key_id)
    if outer_signer is None:
        raise Refused(f"{what}: signed by unregistered key {outer.key_id}; register the device card first")
    sig_failed: list[BaseException] = []

    def check() -> None:
        try:
            if isinstance(cipher, Path):
                with open(cipher, "rb") as fh:
                    signing.verify(outer_signer.sign_public, _Chunks(fh), outer_sig, f"{what} (.minisig)")
            else:
                signing.verify(outer_signer.sign_public, cipher, outer_sig, f"{what} (.minisig)")
        except BaseException as exc:  # re-raised below, first
            sig_failed.append(exc)

    # Opened before anything reads it: `Verified.parts` reads this same file later, wherever it is moved.
    held = open(cipher, "rb") if isinstance(cipher, Path) else None  # noqa: SIM115
    # A small bundle's signature is checked here, first: a second thread costs more than it saves.
    checker: threading.Thread | None = None
    if size <= _DecryptStream.INLINE:
        check()
    else:
        checker = threading.Thread(target=check, name="bundle-outer-signature", daemon=True)
        checker.start()
    found: _Streamed | None = None
    archive_failed: Refused | None = None
    decrypt_failed: Refused | None = None
    try:
        with _DecryptStream(cipher if held is None else held, identities, what) as stream:
            try:
                found = _read_stream(stream, what)
            except Refused as exc:
                archive_failed = exc
            stream.check()
    except Refused as exc:
        decrypt_failed = exc
    finally:
        if checker is not None:
            checker.join()
    try:
        if sig_failed:
            raise sig_failed[0]
        if decrypt_failed is not None:
            raise decrypt_failed
        try:
            if archive_failed is not None:
                raise archive_failed
            assert found is not None
            v = _verify_signed(found, outer, outer_signer, lookup, what, relay is not None)
        except SignedRefusal:
            raise
        except Refused as exc:
            # Refused behind a good signature: the importer knows which device sent it.
            raise SignedRefusal(exc.message, outer_signer) from None
    except BaseException:
        if held is not None:
            held.close()
        raise
    v.source = cipher if isinstance(cipher, bytes) else cast(BinaryIO, held)
    v.identities = list(identities)
    return v


class _Chunks:
    """A file read in 1 MiB pieces whatever size is asked (minisign's prehash asks for 8 KiB)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def read(self, _n: int = -1) -> bytes:
        return self._fh.read(1 << 20)


def _file_size(path: Path, what: str) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise Refused(f"{what}: cannot read the bundle ({exc.strerror})") from None


class SignedRefusal(Refused):
    """A bundle refused after its outer signature verified: `signer` is who sent it."""

    def __init__(self, message: str, signer: Signer) -> None:
        super().__init__(message)
        self.signer = signer


def _verify_signed(
    found: _Streamed,
    outer: signing.ParsedSignature,
    outer_signer: Signer,
    lookup: Callable[[str], Signer | None],
    what: str,
    relayed: bool,
) -> Verified:
    """`verify` once the outer signature is good and the archive decrypted."""
    report = [f"outer signature: good, key {outer_signer.key_id} (device {outer_signer.device})"]
    report.append("decrypted with the given age identity")
    members = found.members  # the small ones, whole; photos and logger files by digest
    for need in (MANIFEST, EVENTS, SUMS, SUMS_SIG):
        if need not in members and not (need == EVENTS and found.events is not None):
            raise Refused(f"{what}: archive lacks {need}")
    assert found.events is not None
    report.append(f"archive: {len(found.sizes)} regular members, names whitelisted")
    signer = outer_signer
    if relayed:
        inner_id = signing.parse(members[SUMS_SIG], f"{what} (SHA256SUMS.minisig)").key_id
        inner_signer = lookup(inner_id)
        if inner_signer is None:
            raise Refused(f"{what}: archive signed by unregistered key {inner_id}")
        signer = inner_signer
    if len(members[SUMS]) > LIMITS.sums_bytes or len(members[SUMS_SIG]) > LIMITS.sums_bytes:
        raise Refused(f"{what}: SHA256SUMS or its signature is larger than {LIMITS.sums_bytes} bytes")
    inner = signing.verify(
        signer.sign_public, members[SUMS], members[SUMS_SIG], f"{what} (SHA256SUMS.minisig)"
    )
    sums = _parse_sums(members[SUMS], what)
    for name in found.sizes:
        if name not in (SUMS, SUMS_SIG) and name not in sums:
            raise Refused(f"{what}: member {name} is not listed in SHA256SUMS")
    for name, digest in sums.items():
        if name not in found.sizes:
            raise Refused(f"{what}: SHA256SUMS lists {name}, which the archive lacks")
        if name == EVENTS:
            actual = found.events.sha
        else:
            actual = found.digests[name] if name in found.digests else sha256(members[name])
        if actual != digest:
            raise Refused(f"{what}: {name} does not match its SHA-256 in SHA256SUMS (changed)")
    report.append(f"SHA256SUMS: signature good, {len(sums)} members match")
    manifest_bytes = members[MANIFEST]
    if len(manifest_bytes) > LIMITS.manifest_bytes:
        raise Refused(f"{what}: manifest.json is larger than {LIMITS.manifest_bytes} bytes")
    try:
        m = json.loads(manifest_bytes)
    except RecursionError:
        raise Refused(f"{what}: manifest.json is nested too deeply") from None
    except ValueError:
        raise Refused(f"{what}: manifest.json is not JSON") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise Refused(f"{what}: manifest format is not {FORMAT}")
    problem = check_manifest(m)
    if problem:
        raise Refused(f"{what}: manifest.json: {problem}")
    if m["device"] != signer.device or m["key_id"] != signer.key_id:
        raise Refused(f"{what}: manifest names device {m['device']} but was signed by {signer.device}")
    if signer.site and m["site"] != signer.site:
        raise Refused(f"{what}: manifest names site {m['site']}, the device is registered for {signer.site}")
    manifest_sha = sha256(manifest_bytes)
    if inner.trusted_comment != trusted_comment(m, manifest_sha):
        raise Refused(f"{what}: the signed trusted comment does not match the manifest")
    if not outer.trusted_comment.endswith(f"manifest={manifest_sha}"):
        raise Refused(f"{what}: the outer signature was made for another manifest")
    # Read line by line as the archive streamed past (`_read_events`); refused here, in this order.
    read = found.events
    if read.not_utf8:
        raise Refused(f"{what}: events.jsonl is not UTF-8")
    if not read.ends_newline:
        raise Refused(f"{what}: events.jsonl does not end with a newline (truncated?)")
    if read.count > LIMITS.events:
        raise Refused(f"{what}: events.jsonl holds more than {LIMITS.events} events")
    lines = read.lines
    events = _check_chain(lines, m, what, read.count, read.long_line)
    report.append(
        f"events: {read.count} lines, seq {m['events']['first']}-{m['events']['last']}, chain intact"
    )
    photos: dict[str, tuple[str, int]] = {}
    for name in found.digests:
        pm = _PHOTO_RE.match(name)
        if pm:
            if sums[name] != pm.group(1):  # the bytes were hashed against SHA256SUMS above
                raise Refused(f"{what}: {name} is not named by the SHA-256 of its bytes")
            photos[pm.group(1)] = (pm.group(2), found.sizes[name])
    refs = set(photo_refs(lines))
    if sorted(photos) != sorted(m.get("photos") or []):
        raise Refused(f"{what}: photo members differ from the manifest's photo list")
    missing = sorted(refs - set(photos))
    if missing:
        raise Refused(f"{what}: events reference photo {missing[0]}, which the bundle lacks")
    extra = sorted(set(photos) - refs)
    if extra:
        raise Refused(f"{what}: photo {extra[0]} is not referenced by any event in the bundle")
    if photos:
        report.append(f"photos: {len(photos)} originals, each named by its SHA-256")
    evidence = _check_evidence(found.digests, sums, lines, m, what)
    if evidence:
        report.append(f"logger files: {len(evidence)}, each named by its SHA-256")
    return Verified(
        m,
        manifest_bytes,
        manifest_sha,
        lines,
        photos,
        signer,
        report,
        events,
        evidence,
        found.offsets,
        dict(found.digests),
    )


def _check_evidence(
    parts: dict[str, str], sums: dict[str, str], lines: list[str], m: dict[str, Any], what: str
) -> dict[str, tuple[str, str]]:
    """Logger-file members: named by their SHA-256, exactly those the manifest lists and the events cite.

    Returns sha256 -> (the file name the events cite, the member that carries it).
    """
    carried: dict[str, str] = {}
    for name in parts:
        em = _EVIDENCE_RE.match(name)
        if em:
            if sums[name] != em.group(1):  # the bytes were hashed against SHA256SUMS already
                raise Refused(f"{what}: {name} is not named by the SHA-256 of its bytes")
            if em.group(1) in carried:
                raise Refused(f"{what}: logger file {em.group(1)} is carried twice")
            carried[em.group(1)] = name
    listed = m.get("evidence") or []
    if not isinstance(listed, list) or sorted(carried) != sorted(listed):
        raise Refused(f"{what}: logger-file members differ from the manifest's evidence list")
    refs = evidence_refs(lines)
    missing = sorted(set(refs) - set(carried))
    if missing:
        raise Refused(f"{what}: events cite logger file {missing[0]}, which the bundle lacks")
    extra = sorted(set(carried) - set(refs))
    if extra:
        raise Refused(f"{what}: logger file {extra[0]} is not cited by any event in the bundle")
    return {d: (refs[d], carried[d]) for d in refs}
