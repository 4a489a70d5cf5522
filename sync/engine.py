"""Apply verified bundles: replay, gap, fork and chain rules, all or nothing.

Both ends use this: the hub for ward bundles, a ward for hub bundles. The
`sync_applied` ledger holds, per signing device, every bundle applied and
its manifest hash; with `chain_heads` it decides what a verified bundle is:

- the next bundle, continuing the device's chain -> applied in one
  transaction (photos, logger files, events through `eventlog.ingest`,
  ledger row);
- a bundle seq already applied with the same manifest hash -> a replay,
  nothing changes ("already applied");
- the same bundle seq (or event seqs already held) with different content
  -> a fork: never dropped, the file is kept beside the applied version and
  the caller is told (the hub records an event and flags the device);
- a bundle seq beyond the next -> held until the gap fills, then applied in
  order automatically;
- the next bundle, but an after-ingest hook will not merge it (a
  participant-id clash, `wardcrf.ingest.HoldForCoordinator`) -> rolled back
  whole and held like a fork (reason from the hook), the caller told.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from wardcrf import authority, eventlog, ingest, records
from wardcrf.clock import iso_utc, now_utc
from wardcrf.errors import Refused
from wardcrf.sqlstore import NotPortable, SqlStore, is_portable
from wardcrf.store import Store

from . import evidencestore, photostore
from .bundle import Verified, bundle_name

T = TypeVar("T")


@dataclass
class Outcome:
    status: str  # applied | already | held | fork
    device: str
    bundle_seq: int
    message: str
    events: int = 0
    released: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "already", "held")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp name, fsync, rename: a reader never sees half a file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_stream(
    path: Path, produce: Callable[[BinaryIO], T], before_rename: Callable[[T], None] | None = None
) -> T:
    """`atomic_write` for data made while it is written: `produce(fh)` fills the temp file.

    `before_rename(result)` runs once the temp file is complete and fsynced,
    before it takes its final name (an export writes the bundle's signature
    there, so a final-named bundle always has its .minisig).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            result = produce(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename(result)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return result


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sweep_incoming(incoming: Path) -> None:
    """Remove spool files left by an importer that was killed (its pid no longer runs)."""
    for f in incoming.iterdir():
        pid = f.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                f.unlink()


class Spool:
    """A received bundle written to temp files while it is being verified.

    The hub keeps every bundle it applies or holds (`applied/`, `held/`).
    Writing and fsyncing a 100 MB bundle is disk-bound work that needs no
    verdict, so a thread does it while the importer checks signatures and
    hashes. The thread's write is one system call (no GIL held), and the
    importer waits until the thread is about to make it: a thread that still
    needed the GIL was starved for the whole decryption, which pyrage does
    holding it. `place` moves the finished files under their final name
    (rename, as `atomic_write` does, so a reader never sees half a file);
    `discard` removes them when the bundle is refused, replayed or crashes
    out.
    """

    def __init__(self, files_dir: Path, cipher: bytes | Path, sig: bytes, *, received: bool = False) -> None:
        """`received`: `cipher` is a file `Receiver` already wrote into the spool (an HTTP push): it is
        adopted as it is, not copied, and removed with the rest if the bundle is not kept."""
        self._dir = files_dir / ".incoming"
        adopt = received and isinstance(cipher, Path)
        self._cipher = cipher if isinstance(cipher, Path) and adopt else self._dir / _spool_name(self)
        self._sig = self._cipher.with_name(self._cipher.name + ".minisig")
        self._failed: BaseException | None = None
        self._done = False
        self.copy: Path | None = None  # a file source, copied: what the importer verifies
        fds: list[int] = []
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            _sweep_incoming(self._dir)
            fds.append(
                os.open(self._cipher, os.O_WRONLY if adopt else os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            )
            fds.append(os.open(self._sig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            _write_all(fds[1], sig)
            if isinstance(cipher, Path):
                if not adopt:
                    _copy_into(fds[0], cipher)
                self.copy = self._cipher
        except BaseException as exc:  # raised again by place(); never lost
            self._failed = exc
        writing = threading.Event()
        self._thread = threading.Thread(
            target=self._write, args=(fds, cipher, writing), name="bundle-spool", daemon=True
        )
        self._thread.start()
        writing.wait(timeout=1.0)  # only ordering: the write goes on without us either way

    def _write(self, fds: list[int], cipher: bytes | Path, writing: threading.Event) -> None:
        try:
            writing.set()
            if self._failed is None:
                if isinstance(cipher, bytes):
                    _write_all(fds[0], cipher)
                for fd in fds:
                    os.fsync(fd)
        except BaseException as exc:  # raised again by place(); never lost
            self._failed = exc
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def place(self, path: Path) -> None:
        """Move the spooled bundle and its signature to `path` (and `path`.minisig)."""
        self._thread.join()
        if self._done:
            raise RuntimeError("a spooled bundle is placed once")
        if self._failed is not None:
            self.discard()
            raise self._failed
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._sig, path.with_name(path.name + ".minisig"))
        os.replace(self._cipher, path)
        self._done = True
        _fsync_dir(path.parent)

    def discard(self) -> None:
        self._thread.join()
        if not self._done:
            for p in (self._cipher, self._sig):
                with contextlib.suppress(OSError):
                    p.unlink()
            self._done = True

    @property
    def placed(self) -> bool:
        return self._done

    @property
    def failed(self) -> BaseException | None:
        """What went wrong while the bundle was copied or written here (raised again by `place`), if anything."""
        return self._failed


@contextlib.contextmanager
def spooled_verify(
    files_dir: Path, cipher: bytes | Path, sig: bytes, verify: Reverify, what: str, *, received: bool = False
) -> Iterator[tuple[Verified, Spool]]:
    """A bundle copied into `files_dir`/.incoming and verified from that copy as a stream; (verdict, spool).

    What the hub's import does (`hub._verify_and_accept`), for a ward's imports
    (`sync import`, `sync restore --from`): a file is copied in 1 MiB pieces,
    then verified from the copy (so what is kept is what was checked, even if
    the USB stick's file changes meanwhile) and never read whole. Hand the
    spool to `accept`; whatever it did not keep is removed on the way out, and
    the verified file released. `received`: the file was streamed into the
    spool already (`Receiver`): adopted, not copied.
    """
    spool = Spool(files_dir, cipher, sig, received=received)
    v: Verified | None = None
    try:
        if isinstance(cipher, Path) and spool.copy is None:
            exc = spool.failed
            reason = getattr(exc, "strerror", None) or exc
            raise Refused(
                f"{what}: cannot copy it into {files_dir / '.incoming'} ({reason}); nothing applied"
            )
        v = verify(spool.copy if spool.copy is not None else cipher, sig)
        yield v, spool
    finally:
        if v is not None:
            v.close()
        spool.discard()


_SPOOLED = itertools.count(1)


def _spool_name(owner: object) -> str:
    """A fresh spool file name: the pid first (`_sweep_incoming` removes a dead importer's files)."""
    return f"{os.getpid()}-{threading.get_ident()}-{next(_SPOOLED)}-{id(owner):x}.tar.age"


class Receiver:
    """A pushed bundle written into the spool (`sync/.incoming/`) as its body arrives, never held whole.

    The HTTP server hands each piece to `write` (refused past `limit`);
    `finish` makes it the file the hub verifies and applies (`Spool` with
    `received=True` adopts it, so it is neither copied nor read whole);
    `discard` removes it (refused, cut short, aborted). A killed server's
    half-written files are swept like any spool file (named by its pid).
    """

    def __init__(self, files_dir: Path, limit: int) -> None:
        self.limit = limit
        self.size = 0
        incoming = files_dir / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        _sweep_incoming(incoming)
        self.path = incoming / _spool_name(self)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes | bytearray) -> None:
        """Append one piece of the body; refused (nothing kept) if the body passes the limit."""
        if self._fd is None:
            raise RuntimeError("the received bundle is closed")
        if self.size + len(data) > self.limit:
            self.discard()
            raise Refused(f"bundle larger than {self.limit} bytes")
        _write_all(self._fd, data)
        self.size += len(data)

    def finish(self) -> Path:
        """The complete body's file (closed; `Spool` fsyncs it while the bundle is verified)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return self.path

    def discard(self) -> None:
        """Remove the file unless the importer kept it (moved under applied/ or held/); safe to call twice."""
        self.finish()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _copy_into(fd: int, source: Path) -> None:
    """Copy a bundle file into the spool in 1 MiB pieces; past the size limit the rest is left (verify refuses it)."""
    from .bundle import LIMITS

    left = LIMITS.bundle_bytes + 1
    with open(source, "rb") as fh:
        while left > 0 and (piece := fh.read(min(1 << 20, left))):
            _write_all(fd, piece)
            left -= len(piece)


def kept_path(files_dir: Path, recorded: str) -> Path:
    """A kept bundle named by a ledger row (`sync_applied.file`, `sync_held.file`), under this site's own folder.

    Rows record the path the file had when it was kept; looking it up by name
    under `files_dir` means a hub restored into another folder never reads
    (or misses) the old folder's copy.
    """
    path = Path(recorded)
    return files_dir / path.parent.name / path.name


def _keep(
    files_dir: Path, kind: str, v: Verified, cipher: bytes | Path, sig: bytes, spool: Spool | None = None
) -> Path:
    name = bundle_name(v.manifest["site"], v.device, v.bundle_seq)
    if kind != "applied":
        name = f"{name[: -len('.tar.age')]}.{v.manifest_sha[:12]}.tar.age"
    path = files_dir / kind / name
    if spool is not None and not spool.placed:
        spool.place(path)
        return path
    atomic_write(path.with_name(path.name + ".minisig"), sig)
    if isinstance(cipher, bytes):
        atomic_write(path, cipher)
    else:  # a file: copied in pieces, never read whole

        def copy(fh: BinaryIO, source: Path = Path(cipher)) -> None:
            _copy_into(fh.fileno(), source)

        atomic_write_stream(path, copy)
    return path


def _unkeep(path: Path) -> None:
    """Remove a kept bundle and its signature that the ledger does not name (rolled back)."""
    for stale in (path.with_name(path.name + ".minisig"), path):
        with contextlib.suppress(OSError):
            stale.unlink()


ForkHook = Callable[[SqlStore, Verified, str], None]
HoldHook = Callable[[SqlStore, Verified, ingest.HoldForCoordinator], None]
Reverify = Callable[[bytes | Path, bytes], Verified]


def last_applied(store: SqlStore, device: str) -> tuple[int, str]:
    row = store.one(
        "SELECT bundle_seq, manifest_sha FROM sync_applied WHERE device = ? ORDER BY bundle_seq DESC LIMIT 1",
        (device,),
    )
    return (row[0], row[1]) if row else (0, "")


def accept(
    store: SqlStore,
    v: Verified,
    cipher: bytes | Path,
    sig: bytes,
    files_dir: Path,
    *,
    on_fork: ForkHook | None = None,
    reverify: Reverify | None = None,
    spool: Spool | None = None,
    on_hold: HoldHook | None = None,
    archive_photos: bool = False,
) -> Outcome:
    """Decide and apply one verified bundle; then release held bundles it unblocks.

    `spool`, when given, holds the bundle's bytes already written to disk
    (`Spool`): kept files are moved into place instead of written again.
    `archive_photos` (the hub) leaves photos in the kept bundle and records
    where they sit (`wardcrf.photos.archive`); a ward stores them in its
    database, which must stand alone on a laptop.
    """
    # Who may say what, before anything is decided or kept: a bundle carrying an
    # event its device may not originate is refused whole (`wardcrf.authority`).
    name = bundle_name(v.manifest["site"], v.device, v.bundle_seq)
    if store.in_transaction:
        # A device's bundles apply in order and once: what follows reads its ledger rows and chain
        # head and writes after them (nothing to take on SQLite, whose writer is already alone).
        store.lock(f"device:{v.device}")
    # Authority first, on both engines: a forged hub event is refused as one its device may not send,
    # never as one a PostgreSQL hub cannot project. The check reads in the common dialect (`authority`);
    # a hook a feature added to it that does not (a form's actions) refuses the bundle by name, never
    # runs, as what `check_portable` refuses.
    try:
        authority.check_import(store, _events_of(v), v.signer.kind, name)
    except NotPortable as exc:
        check_portable(store, v, name)
        raise Refused(
            f"{name}: the authority check of its records ({exc}) does not run at a PostgreSQL hub yet"
            " (issue 19, docs/hub-postgres.md); nothing applied: import it at a SQLCipher hub"
        ) from None
    if not store.holds_projections:
        # Then what passed authority: nothing is applied on such a store that its engine does not speak.
        check_portable(store, v, name)
    outcome = _accept_one(store, v, cipher, sig, files_dir, on_fork, spool, on_hold, archive_photos)
    if outcome.status == "applied" and reverify is not None:
        outcome.released = _release_held(
            store, v.device, files_dir, reverify, on_fork, on_hold, archive_photos
        )
        if outcome.released:
            outcome.message += f"; then applied held bundle(s) {', '.join(map(str, outcome.released))}"
    return outcome


DEFERRED_PROJECTIONS = frozenset({"sync.hub_set"})
"""Types a store without every projection applies without theirs, because they project nothing at a
hub: a ward's choice of hub (another site's; its projector keeps this site's own). Every other type
runs its projectors, which must be `common_dialect` there (`check_portable`)."""

RECORD_TYPES = ("record.submitted", "record.amended")


def check_portable(store: SqlStore, v: Verified, name: str) -> None:
    """Refuse, before anything is decided or kept, a bundle a store without every projection cannot apply whole.

    A PostgreSQL hub (`SqlStore.holds_projections` false) keeps the event log,
    the ledger, the transparency log and the projections whose code is declared
    `common_dialect` (the form records', their amendments and signatures, the
    protocols they were captured under, queries, coding, SDV, randomization,
    amendments applied, and the rules that hold a bundle for a coordinator: a
    participant-id clash, a record before its consent or its enrollment, a kit
    used twice, an allocation off the list), the photos' rows (their bytes stay
    in the kept bundle, as at a SQLCipher hub), the cold chain's projections,
    logger files and readings. A bundle with an event whose projectors, or
    a record of a form whose hooks, or an import check that reads it, are not
    yet in that dialect is refused whole, naming the types and forms, and never
    half applied (what would run is what the SQLCipher hub runs, or nothing).
    """
    events = _events_of(v)
    present = {e.type for e in events}
    # Asked once per type and per form of the bundle, not once per event.
    types = {
        t
        for t in present - DEFERRED_PROJECTIONS
        if not all(is_portable(fn) for fn in eventlog.projectors_for(t))
    }
    forms: set[str] = set()
    form_ok: dict[str, bool] = {}
    submitted: dict[str, object] | None = None  # a correction's record, when not held here
    for e in events:
        if e.type not in RECORD_TYPES or e.type in types:
            continue
        if e.type == "record.amended" and submitted is None:
            submitted = {x.id: x.body.get("form") for x in events if x.type == "record.submitted"}
        form = _form_of(store, e, submitted or {})
        if not isinstance(form, str):
            continue
        ok = form_ok.get(form)
        if ok is None:
            ok = form_ok[form] = all(is_portable(h) for h in records.hooks_for(form))
        if not ok:
            forms.add(form)
    checks = [fn for fn in ingest.hooks_for(present) if not is_portable(fn)]
    if not (types or forms or checks):
        return
    parts = []
    if types:
        parts.append(f"its {_some(sorted(types))} events need projections")
    if forms:
        parts.append(
            f"its records of form(s) {_some([repr(f[:60]) for f in sorted(forms)])} need projections"
        )
    if checks:
        parts.append(f"its events need the import check(s) {_some([ingest.described(fn) for fn in checks])}")
    held = ingest.holds_reading(present)
    reading = f" ({'; '.join(held)})" if held else ""
    raise Refused(
        f"{name}: {' and '.join(parts)} and the checks that read them{reading}, which a PostgreSQL hub does not run"
        " yet (issue 19, docs/hub-postgres.md); nothing applied: import it at a SQLCipher hub"
    )


def _form_of(store: SqlStore, e: eventlog.Event, submitted: dict[str, object]) -> object:
    """The form a record event projects as: a correction's record's own form (held here or in the bundle)."""
    if e.type == "record.amended" and e.amends:
        held = store.scalar("SELECT form FROM records WHERE event_id = ?", (e.amends,))
        if held is not None:
            return held
        if e.amends in submitted:
            return submitted[e.amends]
    return e.body.get("form")


def _some(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _record_held(
    store: SqlStore,
    v: Verified,
    cipher: bytes | Path,
    sig: bytes,
    files_dir: Path,
    reason: str,
    detail: str,
    spool: Spool | None = None,
) -> bool:
    """Hold a bundle for a coordinator (fork, clash); True when newly held (the caller records it).

    A bundle that waited for a gap and turns out a fork or a clash when
    released keeps its row, now with the coordinator's reason.
    """
    row = store.one(
        "SELECT id, reason, resolved_at FROM sync_held WHERE device = ? AND bundle_seq = ? AND manifest_sha = ?",
        (v.device, v.bundle_seq, v.manifest_sha),
    )
    if row is None:
        path = _keep(files_dir, "held", v, cipher, sig, spool)
        store.execute(
            "INSERT INTO sync_held (device, bundle_seq, manifest_sha, reason, file, detail, received_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (v.device, v.bundle_seq, v.manifest_sha, reason, str(path), detail, iso_utc(now_utc())),
        )
        return True
    if row[1] == "gap" and row[2] is None:
        store.execute("UPDATE sync_held SET reason = ?, detail = ? WHERE id = ?", (reason, detail, row[0]))
        return True
    return False


def _fork(
    store: SqlStore,
    v: Verified,
    cipher: bytes | Path,
    sig: bytes,
    files_dir: Path,
    detail: str,
    on_fork: ForkHook | None,
    spool: Spool | None = None,
) -> Outcome:
    with store.transaction():
        if _record_held(store, v, cipher, sig, files_dir, "fork", detail, spool) and on_fork is not None:
            on_fork(store, v, detail)
    return Outcome(
        "fork",
        v.device,
        v.bundle_seq,
        f"FORK: device {v.device} bundle {v.bundle_seq} {detail}; refused, both versions "
        "kept for the coordinator and the device is flagged",
    )


def _hold(
    store: SqlStore,
    v: Verified,
    cipher: bytes | Path,
    sig: bytes,
    files_dir: Path,
    hold: ingest.HoldForCoordinator,
    on_hold: HoldHook | None,
) -> Outcome:
    """A valid bundle an after-ingest hook will not merge: kept in held/, recorded, the caller told."""
    with store.transaction():
        if _record_held(store, v, cipher, sig, files_dir, hold.reason, hold.detail) and on_hold is not None:
            on_hold(store, v, hold)
    return Outcome(
        hold.reason,
        v.device,
        v.bundle_seq,
        f"{hold.reason.upper()}: device {v.device} bundle {v.bundle_seq}: {hold.detail}; refused, "
        "held for the coordinator with both sides kept and the device is flagged",
    )


def _accept_one(
    store: SqlStore,
    v: Verified,
    cipher: bytes | Path,
    sig: bytes,
    files_dir: Path,
    on_fork: ForkHook | None,
    spool: Spool | None = None,
    on_hold: HoldHook | None = None,
    archive_photos: bool = False,
) -> Outcome:
    dev, bseq, m = v.device, v.bundle_seq, v.manifest
    row = store.one("SELECT manifest_sha FROM sync_applied WHERE device = ? AND bundle_seq = ?", (dev, bseq))
    if row is not None:
        if row[0] == v.manifest_sha:
            return Outcome("already", dev, bseq, f"bundle {bseq} of device {dev} already applied (no change)")
        if _holds_same_events(store, v):
            return _replay(store, v, cipher, sig, files_dir, spool)
        if bseq == last_applied(store, dev)[0] and _continues_past_head(store, v):
            return _apply_new_tail(store, v, cipher, sig, files_dir, spool, on_hold, archive_photos)
        return _fork(
            store,
            v,
            cipher,
            sig,
            files_dir,
            "reuses a bundle seq already applied with different content",
            on_fork,
            spool,
        )
    last_seq, last_sha = last_applied(store, dev)
    head_seq, head_hash = eventlog.head(store, dev)  # this transaction's appends included
    first = m["events"]["first"]
    if first <= head_seq:
        if _holds_same_events(store, v):
            return _replay(store, v, cipher, sig, files_dir, spool)
        if bseq == last_seq + 1 and _continues_past_head(store, v):
            return _apply_new_tail(store, v, cipher, sig, files_dir, spool, on_hold, archive_photos)
        return _fork(
            store,
            v,
            cipher,
            sig,
            files_dir,
            f"reuses event seq {first}-{m['events']['last']} with different content",
            on_fork,
            spool,
        )
    if bseq > last_seq + 1:
        path = _keep(files_dir, "held", v, cipher, sig, spool)
        with store.transaction():
            store.execute(
                "INSERT INTO sync_held (device, bundle_seq, manifest_sha, reason, file, detail, received_at)"
                " VALUES (?,?,?,'gap',?,?,?) ON CONFLICT DO NOTHING",
                (
                    dev,
                    bseq,
                    v.manifest_sha,
                    str(path),
                    f"waiting for bundle {last_seq + 1}",
                    iso_utc(now_utc()),
                ),
            )
        return Outcome(
            "held",
            dev,
            bseq,
            f"bundle {bseq} of device {dev} held: bundle {last_seq + 1} has not arrived yet (gap)",
        )
    if bseq < last_seq + 1:
        raise Refused(
            f"bundle {bseq} of device {dev} is older than the last applied ({last_seq}) and unknown here"
        )
    continues = first == head_seq + 1 and m["chain_first_prev"] == head_hash
    if m["prev_manifest"] != last_sha and not continues:
        return _fork(
            store,
            v,
            cipher,
            sig,
            files_dir,
            "does not follow the bundle applied before it (previous manifest differs)",
            on_fork,
            spool,
        )
    # (A previous manifest that differs while the event chain continues is a
    # re-export of that bundle, recognised by content in `_holds_same_events`.)
    if not continues:
        raise Refused(
            f"bundle {bseq} of device {dev}: broken chain (starts at event {first} after "
            f"{m['chain_first_prev'][:12]}…, this copy holds up to {head_seq} ending {head_hash[:12]}…)"
        )
    path = _keep(files_dir, "applied", v, cipher, sig, spool)
    try:
        return _apply(store, v, path, archive_photos)
    except ingest.HoldForCoordinator as hold:
        # Rolled back whole; the copy under applied/ names nothing in the ledger. It is
        # what is held (the spooled source may be gone), then removed from applied/.
        try:
            return _hold(store, v, path, sig, files_dir, hold, on_hold)
        finally:
            _unkeep(path)


def _holds_same_events(store: SqlStore, v: Verified) -> bool:
    """Does this copy hold exactly the bundle's events already (a replay by content)?

    The chain hash of the bundle's last event commits to every event before
    it, back to the device's first, and the bundle's own lines were checked
    to chain from `chain_first_prev` to `chain_last`; photos and logger files
    are exactly those the events cite. So one hash compared says the content
    is the same, whatever the manifest's `created` or the bundle's cut.
    """
    ev = v.manifest["events"]
    held = store.scalar("SELECT hash FROM events WHERE device = ? AND seq = ?", (v.device, ev["last"]))
    return held is not None and held == v.manifest["chain_last"]


def _continues_past_head(store: SqlStore, v: Verified) -> bool:
    """Does the bundle hold this copy's last event of the device, unchanged, and events after it?

    A ward restored from a copy taken before an export, which then recorded
    more, cuts bundles that straddle: events the hub holds, then new ones.
    The bundle's event at the hub's head seq having the hub's hash means
    every event up to it is the same (each hash commits to all before it).
    """
    head_seq, head_hash = eventlog.head(store, v.device)
    ev = v.manifest["events"]
    if not ev["first"] <= head_seq < ev["last"]:
        return False
    at_head = _events_of(v)[head_seq - ev["first"]]
    return at_head.seq == head_seq and at_head.hash == head_hash


def _apply_new_tail(
    store: SqlStore,
    v: Verified,
    cipher: bytes | Path,
    sig: bytes,
    files_dir: Path,
    spool: Spool | None,
    on_hold: HoldHook | None,
    archive_photos: bool,
) -> Outcome:
    """A straddling bundle: its held part is a replay, the events after the hub's head are applied.

    The same checks as any bundle (authority, bodies, the domain's sequencing)
    run on the new events; the ledger row of this bundle seq then describes
    this cut (the earlier cut of the same seq is answered by content).
    """
    head_seq = eventlog.head(store, v.device)[0]
    path = _keep(files_dir, "applied", v, cipher, sig, spool)
    try:
        out = _apply(store, v, path, archive_photos, after=head_seq)
    except ingest.HoldForCoordinator as hold:
        try:
            return _hold(store, v, path, sig, files_dir, hold, on_hold)
        finally:
            _unkeep(path)
    ev = v.manifest["events"]
    return Outcome(
        "applied",
        v.device,
        v.bundle_seq,
        f"bundle {v.bundle_seq} of device {v.device}: events {ev['first']}-{head_seq} already held"
        f" (a re-export), events {head_seq + 1}-{ev['last']} applied",
        events=out.events,
    )


def _replay(
    store: SqlStore, v: Verified, cipher: bytes | Path, sig: bytes, files_dir: Path, spool: Spool | None
) -> Outcome:
    """A re-export of events held here: nothing changes; the ledger learns the bundle seq if it is the next.

    A ward restored from a copy made before an export cuts its bundles again
    (new `created`, maybe other sizes). Noting the next seq keeps the ledger
    contiguous, so the ward's following bundle is not held as a gap.
    """
    dev, bseq, m = v.device, v.bundle_seq, v.manifest
    ev = m["events"]
    if bseq == last_applied(store, dev)[0] + 1:
        path = _keep(files_dir, "applied", v, cipher, sig, spool)
        with store.transaction():
            store.execute(
                "INSERT INTO sync_applied (device, bundle_seq, manifest_sha, first_seq, last_seq, chain_last,"
                " file, applied_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    dev,
                    bseq,
                    v.manifest_sha,
                    ev["first"],
                    ev["last"],
                    m["chain_last"],
                    str(path),
                    iso_utc(now_utc()),
                ),
            )
    return Outcome(
        "already",
        dev,
        bseq,
        f"bundle {bseq} of device {dev} holds the same events {ev['first']}-{ev['last']} this hub "
        "already holds (a re-export); nothing changes",
    )


def _events_of(v: Verified) -> list[eventlog.Event]:
    if not v.events:
        v.events = [eventlog.Event.from_line(line) for line in v.lines]
    return v.events


def _apply(
    store: SqlStore, v: Verified, path: Path, archive_photos: bool = False, *, after: int = 0
) -> Outcome:
    """Photos, logger files, events, after-ingest hooks and the ledger row: one transaction.

    `after`: the events up to this seq are held here already (a straddling
    re-export, `_apply_new_tail`); only the later ones are written, and the
    ledger row of the bundle seq is replaced by this cut's.
    """
    dev, bseq, m = v.device, v.bundle_seq, v.manifest
    first = m["events"]["first"]
    kept = f"{path.parent.name}/{path.name}"  # relative to the sync folder
    # Logger files are kept where the events are (`cc_evidence`, on either engine). A hub archives
    # photos on either engine: the row where the hub's wards' data is, the bytes left in the kept
    # bundle; only a ward (SQLCipher) stores their bytes in its database.
    projected = store if isinstance(store, Store) else None
    with store.transaction():
        # Photos and logger files one at a time, read again from the verified
        # bundle as a stream (`Verified.parts`): never all of them in memory.
        cited = {member: (digest, name) for digest, (name, member) in v.evidence.items()}
        for member, data in v.parts():
            if member in cited:
                digest, name = cited[member]
                evidencestore.save(store, digest, name, data)
                continue
            digest = v.digests[member]
            # The photo store skips a photo it holds already (by its name);
            # reading a held one back to re-hash it here would decide nothing.
            if archive_photos:
                photostore.archive_original(
                    store,
                    digest,
                    data,
                    bundle=kept,
                    member=member,
                    offset=v.offsets[member],
                    device=dev,
                    bundle_seq=bseq,
                )
            elif projected is None:
                raise Refused(f"{kept}: carries photos, which only a hub archives on this store")
            else:
                photostore.save_original(projected, digest, v.photos[digest][0], data)
        events = [e for e in _events_of(v) if e.seq > after] if after else _events_of(v)
        # A store without every projection took only bundles whose projectors and checks it runs
        # (`check_portable`); its reference data's types are written without their projectors.
        unprojected = () if store.holds_projections else DEFERRED_PROJECTIONS
        eventlog.ingest_many(store, events, unprojected=unprojected)
        ingest.after_ingest(store, events)
        store.execute(
            "INSERT INTO sync_applied (device, bundle_seq, manifest_sha, first_seq, last_seq, chain_last,"
            " file, applied_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (device, bundle_seq) DO UPDATE SET"
            " manifest_sha = excluded.manifest_sha, first_seq = excluded.first_seq, last_seq = excluded.last_seq,"
            " chain_last = excluded.chain_last, file = excluded.file, applied_at = excluded.applied_at",
            (
                dev,
                bseq,
                v.manifest_sha,
                first,
                m["events"]["last"],
                m["chain_last"],
                str(path),
                iso_utc(now_utc()),
            ),
        )
        # A bundle held for the coordinator (a kit given twice, ...) imported again once its conflict was
        # corrected: its hold is resolved, no longer listed (a gap's row is `_release_held`'s).
        store.execute(
            "UPDATE sync_held SET resolved_at = ?, detail = detail || '; released: applied' WHERE device = ?"
            " AND bundle_seq = ? AND manifest_sha = ? AND reason != 'gap' AND resolved_at IS NULL",
            (iso_utc(now_utc()), dev, bseq, v.manifest_sha),
        )
    return Outcome(
        "applied",
        dev,
        bseq,
        f"bundle {bseq} of device {dev} applied: events {first}-{m['events']['last']}",
        events=len(events),
    )


def _release_held(
    store: SqlStore,
    device: str,
    files_dir: Path,
    reverify: Reverify,
    on_fork: ForkHook | None,
    on_hold: HoldHook | None = None,
    archive_photos: bool = False,
) -> list[int]:
    released: list[int] = []
    for _ in range(100000):  # bounded: one pass per held bundle at most
        nxt = last_applied(store, device)[0] + 1
        row = store.one(
            "SELECT id, file FROM sync_held WHERE device = ? AND bundle_seq = ? AND reason = 'gap'"
            " AND resolved_at IS NULL ORDER BY id LIMIT 1",
            (device, nxt),
        )
        if row is None:
            break
        path = kept_path(files_dir, row[1])
        try:
            # Verified from its file as a stream, like any import: never read whole.
            sig = path.with_name(path.name + ".minisig").read_bytes()
            v = reverify(path, sig)
            try:
                out = _accept_one(
                    store, v, path, sig, files_dir, on_fork, on_hold=on_hold, archive_photos=archive_photos
                )
            finally:
                v.close()
        except (OSError, Refused) as exc:
            with store.transaction():
                store.execute(
                    "UPDATE sync_held SET resolved_at = ?, detail = ? WHERE id = ?",
                    (iso_utc(now_utc()), f"refused when released: {exc}", row[0]),
                )
            break
        if out.status not in ("applied", "already", "held"):
            break  # fork, clash, sequencing: the same row now holds it for the coordinator (_record_held)
        with store.transaction():
            store.execute(
                "UPDATE sync_held SET resolved_at = ?, detail = ? WHERE id = ?",
                (iso_utc(now_utc()), f"released: {out.status}", row[0]),
            )
        if out.status != "applied":
            break
        released.append(nxt)
    return released
