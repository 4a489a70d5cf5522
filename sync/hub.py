"""The coordinator hub: import ward bundles, answer with receipts, send bundles back.

A hub is a wardcrf site of kind 'hub' with its own encrypted database and
key pair. Ward events are merged into its projections through
`eventlog.ingest` (the same projectors as on the ward), so the hub sees
every site's records, amendments and conflicts. Imports are serialised by a
process-wide lock (one SQLCipher connection per hub process). A hub made with
a PostgreSQL database (`pghub`) keeps what wards send there instead
(`ledger_store`), where several processes import at once under per-device
advisory locks.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypedDict, cast

from wardcrf import devicekeys, gcfreeze, ingest, projections, protocol, records
from wardcrf.errors import ColumnTypeError, InternalError, Refused, UsageError, WardError
from wardcrf.site import DEFAULT_ZONE, InitResult, Session, Site
from wardcrf.sqlstore import SqlStore
from wardcrf.store import LARGE_PAGE_CACHE_KIB, Store

from . import bundle, engine, hublog, outbox, receipts, registry
from .pgstore import PgStore

LOCK = threading.RLock()


def init(
    data_dir: Path,
    *,
    admin: str,
    password: str,
    site: str = "HUB",
    name: str = "hub",
    full_name: str | None = None,
    zone_name: str = DEFAULT_ZONE,
    protocol_file: Any = None,
    database: str | None = None,
) -> InitResult:
    """A hub; `protocol_file` (a read file of either format) is its trial's protocol instead of the shipped default.

    With `database` (a PostgreSQL DSN) what wards send is kept there (`pghub`); nothing is created
    when the database cannot be used.
    """

    def create() -> InitResult:
        return Site.init(
            data_dir,
            site=site,
            device_name=name,
            admin=admin,
            password=password,
            admin_full_name=full_name,
            zone_name=zone_name,
            kind="hub",
            protocol_file=protocol_file,
        )

    if database is None:
        return create()
    from . import pghub

    return pghub.attach(data_dir, database, create, admin, password)


def require_hub(session: Session) -> None:
    if registry.own_site(session.store)[2] != "hub":
        raise UsageError(f"{session.site.data_dir} is a ward, not a hub (create one with wardcrf hub init)")


def files_dir(session: Session) -> Path:
    return session.site.data_dir / "sync"


def kept_file(session: Session, recorded: str) -> Path:
    """The kept bundle a ledger row names, under this hub's own folder (`engine.kept_path`)."""
    return engine.kept_path(files_dir(session), recorded)


@contextlib.contextmanager
def ledger_store(session: Session) -> Iterator[SqlStore]:
    """Where this hub keeps what wards send: its SQLCipher file, or its PostgreSQL database (`pghub`).

    On PostgreSQL the hub's device registry (a projection of the hub's own
    events, in its file) is copied there first, so the checks where data
    enters and the receipts read it beside the ledger; and the hub's own
    events made since the last copy are projected there (`pghub.mirror_own_events`:
    a protocol version it loaded, a query it raised), so a ward's events meet
    what they meet in a SQLCipher hub's file.
    """
    from . import pghub

    if not pghub.configured(session.site.data_dir):
        yield session.store
        return
    with pghub.ledger(session) as store:  # `hub serve`'s pool lends it, else a connection of its own
        pghub.mirror_registry(session.store, store)
        pghub.mirror_own_events(session.store, store)
        yield store


@contextlib.contextmanager
def wards_data(session: Session) -> Iterator[SqlStore]:
    """Where the wards' data is, to read it only (an export): the site's file, or its PostgreSQL database.

    On PostgreSQL, one READ ONLY, REPEATABLE READ transaction: the whole export reads one committed
    state while importers go on, and writes nothing, so a read replica's DSN may be given instead of
    the primary's (`WARDCRF_HUB_DATABASE`). The registry is not copied first (`ledger_store` does):
    nothing here reads it.
    """
    from . import pghub

    if not pghub.configured(session.site.data_dir):
        yield session.store
        return
    with pghub.ledger(session) as store, store.snapshot():
        store.execute("SET TRANSACTION READ ONLY")
        yield store


@contextlib.contextmanager
def ledger_reader(session: Session) -> Iterator[SqlStore]:
    """The ledger for a request that reads it only (`hub serve`'s device state and receipts).

    On SQLCipher, under the hub lock (one connection to the hub's file, shared
    by the server's threads). On PostgreSQL the lock is held only while the
    hub's file is read and the registry copied (`ledger_store`); the database
    is then read outside it, on the worker's pooled connection, in one
    REPEATABLE READ snapshot: a ward asking for its receipt does not wait for
    another ward's import, and sees one committed state. The lock is taken
    before the connection, as an import does, so the two never wait for each
    other in a circle.
    """
    from . import pghub

    if not pghub.configured(session.site.data_dir):
        with LOCK:
            yield session.store
        return
    with contextlib.ExitStack() as stack:
        with LOCK:
            store = stack.enter_context(ledger_store(session))
        assert isinstance(store, PgStore)
        with store.snapshot():
            yield store


@contextlib.contextmanager
def reading_store(session: Session) -> Iterator[SqlStore]:
    """Where this site's wards' rows are, for a command that reads them: its file, or a PostgreSQL hub's
    database (a connection of its own; nothing is written through it).

    The `photo` commands read, show, export and verify photos from here (their
    bytes are in the kept bundles either way, opened with the identity in the
    hub's file: `wardcrf.photos.archive`). (The cold chain's reports read
    through `hubview.direct`, which projects the hub's own events first.)
    """
    from . import pghub

    if not pghub.configured(session.site.data_dir):
        yield session.store
        return
    store = pghub.open_ledger(session)
    try:
        yield store
    finally:
        store.close()


def _registry_changed(session: Session, store: SqlStore) -> None:
    """A fork or a clash flagged a device in the hub's file: the receipt, read from `store`, says so too."""
    from . import pghub

    if isinstance(store, PgStore):
        pghub.mirror_registry(session.store, store)


def _identity(store: Store) -> str:
    dev = registry.own_site(store)[1]
    keys = devicekeys.load(store, dev)
    if keys is None:
        raise Refused("this hub has no keys")
    return keys.age_identity


def verify(store: Store, cipher: bytes | Path, sig: bytes, what: str = "bundle") -> bundle.Verified:
    return bundle.verify(cipher, sig, registry.hub_lookup(store), [_identity(store)], what)


@dataclass
class ImportResult:
    outcome: engine.Outcome
    receipt: tuple[str, bytes, bytes] | None

    @property
    def ok(self) -> bool:
        return self.outcome.ok


def import_bundle(
    session: Session, cipher: bytes | Path, sig: bytes, what: str = "bundle", *, received: bool = False
) -> ImportResult:
    """Verify and apply one ward bundle (see `engine`); returns the outcome and a signed receipt.

    `cipher` is the bundle's bytes, or its file (`import_file`). `received`:
    the file is an HTTP push already written into the hub's spool as it
    arrived (`engine.Receiver`); it is verified and kept as it is, not copied.
    """
    session.require("hub.manage", what="import bundles")
    require_hub(session)
    signer = devicekeys.signer(session)
    with LOCK, gcfreeze.long_lived_frozen(), ledger_store(session) as store:
        _import_pragmas(store)
        try:
            with store.transaction():  # this bundle alone, all or nothing
                outcome = _apply(session, store, cipher, sig, what, received=received)
        except Refused as exc:
            record_refusal(session, what, exc)
            raise
        hublog.sign_checkpoint(store, signer)
        _registry_changed(session, store)
        return ImportResult(outcome, receipts.make(store, outcome.device, signer))


def _import_pragmas(store: SqlStore) -> None:
    # A hub's indexes outgrow SQLite's default 2 MB page cache after a few
    # hundred thousand events; 256 MB keeps large imports off the disk (the hub's process keeps it).
    if isinstance(store, Store):
        store.execute(f"PRAGMA cache_size = {-LARGE_PAGE_CACHE_KIB}")
        # A value its PostgreSQL column would refuse (a forged record's "fast" for a pulse) is refused
        # here too, with PostgreSQL's words (`Store.check_value_types`): the engines agree on a bundle.
        # The projections' tables, not the derived ones (ward queue, counters, readings index): those
        # are computed from these.
        store.check_value_types(projections.PROJECTION_TABLES, COMPUTED_COLUMNS, CHECKED_PER_BATCH)


UPDATED_IN_PLACE = frozenset(
    {
        "administration_kits",
        "cc_excursions",
        "codings",
        "participants",
        "photo_bindings",
        "protocols",
        "records",
        "sync_devices",
        "sync_queries",
        "users",
    }
)
"""Projected tables wardcrf's code changes with an UPDATE (or an upsert setting a value other than the
row's own): they keep their UPDATE value-type trigger (tests/unit/test_value_types_per_batch.py holds
the code to this list)."""

CHECKED_PER_BATCH = frozenset(projections.PROJECTION_TABLES) - UPDATED_IN_PLACE
"""Projected tables that keep no value-type trigger at all (`Store.check_value_types`'s `per_batch`):
written by plain INSERTs and upserts whose values are checked once per batch; a trigger on the connection
costs the import even where it never fires (docs/performance.md). Another statement writing one of them
has the triggers made for it: what is refused is the same."""

COMPUTED_COLUMNS = frozenset(
    {"records.version", "protocols.active", "photo_first_refs.seq", "photo_first_refs.ordinal"}
)
"""Projected columns only wardcrf's code fills, never from a bundle's values: not checked at import
(`Store.check_value_types`; a record's version is counted, a reference's position is its event's)."""


def _apply(
    session: Session, store: SqlStore, cipher: bytes | Path, sig: bytes, what: str, *, received: bool = False
) -> engine.Outcome:
    """Verify one bundle and apply it (inside the caller's transaction or savepoint).

    Anything but a refusal that escapes here is an error no check foresaw:
    it becomes `InternalError`, a refusal of this bundle alone (the caller
    rolls it back), so one hostile file never stops an import or a server.
    """
    try:
        outcome = _verify_and_accept(session, store, cipher, sig, what, received)
        # In the same savepoint: a bundle is applied or held together with its leaf, or neither.
        hublog.log_bundle(store, outcome.device, outcome.bundle_seq, outcome.status)
        return outcome
    except WardError:
        raise  # a refusal, or the hub's own trouble (disk full): not the bundle's fault
    except Exception as exc:
        raise InternalError(
            f"{what}: refused, nothing applied: an unexpected {type(exc).__name__} while checking it "
            f"({str(exc)[:200]}); a bug the hub's checks should have caught, please report it"
        ) from exc


def _verify_and_accept(
    session: Session, ledger: SqlStore, cipher: bytes | Path, sig: bytes, what: str, received: bool = False
) -> engine.Outcome:
    """Verify against the hub's registry and keys (its file), then decide and apply in `ledger`."""
    store = session.store
    # The bundle goes to disk (kept if applied or held) while it is verified.
    # A file is copied first and verified from the hub's own copy, so what is
    # kept is what was checked, even if the file changes meanwhile. An HTTP
    # push is already in the spool, written there as it arrived: it is adopted.
    spool = engine.Spool(files_dir(session), cipher, sig, received=received) if cipher else None
    v: bundle.Verified | None = None
    try:
        v = verify(store, spool.copy if spool is not None and spool.copy else cipher, sig, what)

        def on_fork(st: SqlStore, fv: bundle.Verified, detail: str) -> None:
            applied = st.scalar(
                "SELECT manifest_sha FROM sync_applied WHERE device = ? AND bundle_seq = ?",
                (fv.device, fv.bundle_seq),
            )
            _append_once(
                session,
                type="sync.fork_detected",
                subject=f"device:{fv.device}",
                body={
                    "device": fv.device,
                    "site": fv.manifest["site"],
                    "bundle_seq": fv.bundle_seq,
                    "held_manifest": fv.manifest_sha,
                    "applied_manifest": applied,
                    "events": fv.manifest["events"],
                    "detail": detail,
                },
            )

        def reverify(c: bytes | Path, s: bytes) -> bundle.Verified:
            return verify(store, c, s, "held bundle")

        def on_hold(st: SqlStore, hv: bundle.Verified, hold: ingest.HoldForCoordinator) -> None:
            _append_once(
                session,
                type="sync.bundle_held",
                subject=f"device:{hv.device}",
                body={
                    **hold.body,
                    "device": hv.device,
                    "site": hv.manifest["site"],
                    "bundle_seq": hv.bundle_seq,
                    "held_manifest": hv.manifest_sha,
                    "reason": hold.reason,
                    "detail": hold.detail,
                },
            )

        try:
            return engine.accept(
                ledger,
                v,
                cipher,
                sig,
                files_dir(session),
                on_fork=on_fork,
                reverify=reverify,
                spool=spool,
                on_hold=on_hold,
                archive_photos=True,
            )
        except bundle.SignedRefusal:
            raise
        except Refused as exc:
            raise bundle.SignedRefusal(exc.message, v.signer) from None
        except ColumnTypeError as exc:
            raise bundle.SignedRefusal(misfit(v, exc), v.signer) from None
    finally:
        if v is not None:
            v.close()
        if spool is not None:
            spool.discard()


def misfit(v: bundle.Verified, exc: ColumnTypeError) -> str:
    """The one line a bundle is refused with when one of its values does not fit its projected column.

    The same words on both engines (PostgreSQL's, which a SQLCipher hub's check repeats): a ward
    validates its records before saving them, so such a value comes from a bundle made by hand.
    """
    first = (exc.detail.splitlines() or [""])[0][:200]
    detail = "".join(ch if ch.isprintable() else "?" for ch in first)
    return (
        f"{bundle.bundle_name(v.manifest['site'], v.device, v.bundle_seq)}: a value in it does not fit the"
        f" type its projection keeps ({detail}); a ward's wardcrf refuses such a value before saving it,"
        " so this bundle was not made by one; nothing applied"
    )


def _append_once(session: Session, *, type: str, subject: str, body: dict[str, Any]) -> None:
    """Append the hub's flag of a held bundle (fork, hold) to its file, once per (kind, device, bundle, manifest).

    At a SQLCipher hub the ledger is the hub's file and this append shares the
    bundle's transaction. At a PostgreSQL hub it commits in the file while the
    bundle's PostgreSQL transaction is still open: if that transaction then
    fails, or the process is killed before it commits, the flag stays (the
    hub did see the fork, and the device stays flagged) and nothing of the
    bundle is kept. Importing it again holds it and finds its flag recorded
    already, so the fork is recorded exactly once, never zero times (the file
    commits first) and never twice.
    """
    store = session.store
    if store.one(
        "SELECT 1 FROM events WHERE subject = ? AND type = ?"
        " AND json_extract(line, '$.body.bundle_seq') = ? AND json_extract(line, '$.body.held_manifest') = ?",
        (subject, type, body["bundle_seq"], body["held_manifest"]),
    ):
        return
    session.append(type=type, subject=subject, body=body)


def record_refusal(session: Session, what: str, exc: Refused) -> None:
    """Keep the hub's record of a refused bundle: a `sync.bundle_refused` event (what, why, which device).

    Only for a bundle whose outer signature verified with a registered key
    (`bundle.SignedRefusal`): a device sent it, and the coordinator must see
    it. Bytes from nobody in particular (an unsigned or unknown-key upload to
    `hub serve`) are refused with the same line but leave no event, or anyone
    could grow the hub's append-only log at will. The same refusal of the
    same file from the same device is recorded once (a ward retrying).
    """
    if not isinstance(exc, bundle.SignedRefusal):
        return
    signer, reason = exc.signer, exc.message[:2000]
    store = session.store
    if store.one(
        "SELECT 1 FROM sync_refusals WHERE device = ? AND file = ? AND reason = ?",
        (signer.device, what, reason),
    ):
        return
    with store.transaction():
        session.append(
            type="sync.bundle_refused",
            subject=f"device:{signer.device}",
            body={"file": what[:1000], "reason": reason, "device": signer.device, "site": signer.site},
        )


@dataclass
class FileImport:
    """What became of one file of a multi-file import: a result, or the refusal."""

    path: Path
    result: ImportResult | None = None
    refused: str | None = None


# A multi-file import commits at least this often (seconds), so a long batch
# neither holds the write lock for minutes nor loses much to a crash.
GROUP_COMMIT_SECONDS = 5.0


def import_files(
    session: Session,
    paths: list[Path],
    *,
    group_seconds: float = GROUP_COMMIT_SECONDS,
    on_done: Callable[[FileImport], None] | None = None,
) -> list[FileImport]:
    """Verify and apply several bundle files in name order (`wardcrf hub import FILE...`).

    Each bundle is still all or nothing: it is applied in a savepoint, and a
    refused one rolls back to it alone. What changes is the commit: bundles
    are committed in groups (one COMMIT every `group_seconds` at most) rather
    than one by one, because a commit writes every page the bundle touched
    to the WAL, fsyncs it and checkpoints it, and consecutive bundles touch
    many of the same pages (indexes, projections). A crash loses the open
    group only, which re-importing the same files completes. Receipts are
    signed after the group commits: a receipt never names what is not durable.
    `on_done` is called for each file once its group has committed (progress).
    """
    import time

    session.require("hub.manage", what="import bundles")
    require_hub(session)
    names = sorted(paths, key=lambda p: Path(p).name)
    for path in names:
        if not Path(path).name.endswith(".tar.age"):
            raise UsageError(
                f"{Path(path).name} is not a bundle (expected a .tar.age file with its .minisig beside it)"
            )
    signer = devicekeys.signer(session)
    out: list[FileImport] = []
    with LOCK, gcfreeze.long_lived_frozen(), ledger_store(session) as store:
        _import_pragmas(store)
        if not isinstance(store, Store):
            # Many writers: one bundle per transaction, so an importer never holds one device's
            # lock while it waits for another's (two importers would wait on each other).
            group_seconds = 0.0
        i = 0
        while i < len(names):
            group: list[FileImport] = []
            with store.transaction():
                started = time.monotonic()
                while i < len(names) and (not group or time.monotonic() - started < group_seconds):
                    path = Path(names[i])
                    i += 1
                    item = FileImport(path)
                    group.append(item)
                    try:
                        sig = read_sig(path)
                        with store.transaction():  # a savepoint: this bundle, all or nothing
                            outcome = _apply(session, store, path, sig, path.name)
                        item.result = ImportResult(outcome, None)
                    except WardError as exc:
                        item.refused = str(exc)
                        if isinstance(exc, Refused):
                            record_refusal(session, path.name, exc)
            hublog.sign_checkpoint(store, signer)  # the group is durable: sign the tree it grew
            _registry_changed(session, store)
            for item in group:
                if item.result is not None:
                    item.result.receipt = receipts.make(store, item.result.outcome.device, signer)
                if on_done is not None:
                    on_done(item)
            out += group
    return out


def import_file(session: Session, path: Path) -> ImportResult:
    """`import_bundle` of a file: copied into the spool and verified from that copy as a stream, never read whole."""
    path = Path(path)
    return import_bundle(session, path, read_sig(path), path.name)


def read_sig(path: Path) -> bytes:
    """The `.minisig` beside a bundle file, once the file's name and size pass (the bundle is not read)."""
    path = Path(path)
    if not path.name.endswith(".tar.age"):
        raise UsageError(
            f"{path.name} is not a bundle (expected a .tar.age file with its .minisig beside it)"
        )
    sig_path = path.with_name(path.name + ".minisig")
    limit = bundle.LIMITS.bundle_bytes
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if size > limit:  # refused before a byte is read
        raise Refused(f"{path.name}: the bundle is {size} bytes, larger than {limit // (1024 * 1024)} MiB")
    try:
        sig = sig_path.read_bytes() if sig_path.stat().st_size <= 64 * 1024 else b""
    except OSError:
        raise Refused(f"{path.name}: signature file {sig_path.name} is missing") from None
    return sig


def outbound(session: Session, ward_device: str, *, after: int | None = None) -> list[dict[str, Any]]:
    """Hub -> ward: cut new hub events into bundles for one ward; returns its pending bundles.

    `after` is the last hub bundle the ward has applied (sent by `sync pull`):
    bundles up to it count as delivered and are not rebuilt again.
    """
    require_hub(session)
    store = session.store
    with LOCK:
        dev = registry.device(store, ward_device)
        if dev is None:
            raise Refused(f"unknown device {ward_device}; register its card first")
        if dev["status"] == "retired":
            raise Refused(f"device {ward_device} is retired")
        if after is not None:
            from wardcrf.clock import iso_utc, now_utc

            with store.transaction():
                store.execute(
                    "UPDATE sync_outbox SET receipted_at = ? WHERE peer = ? AND bundle_seq <= ?"
                    " AND receipted_at IS NULL",
                    (iso_utc(now_utc()), ward_device, after),
                )
        outbox.plan(store, ward_device, [dev["age_recipient"]])
        return outbox.pending(store, ward_device)


RESTORE_ORDER = "ORDER"
"""In `restore/`: the bundles' file names, one a line, in the order the hub applied them."""


def outbound_files(session: Session, ward_device: str, to_dir: Path, *, restore: bool = False) -> list[Path]:
    """Write every pending hub bundle for a ward to a directory (USB); with `restore`,
    also the site's original bundles for a replacement laptop (in `restore/`)."""
    session.require("hub.manage", what="export hub bundles")
    signer = devicekeys.signer(session)
    out: list[Path] = []
    if restore:
        order: list[str] = []
        for item in restore_list(session, ward_device):
            # Streamed into its file (signature first, beside it, before the bundle takes its name).
            dest = Path(to_dir) / "restore" / kept_file(session, item["file"]).name

            def produce(fh: BinaryIO, item: dict[str, Any] = item) -> bytes:
                return restore_bundle_into(session, ward_device, item["device"], item["bundle_seq"], fh)[1]

            def sign_beside(sig: bytes, dest: Path = dest) -> None:
                engine.atomic_write(dest.with_name(dest.name + ".minisig"), sig)

            engine.atomic_write_stream(dest, produce, sign_beside)
            out.append(dest)
            order.append(dest.name)
        if order:
            # The order this hub applied them in (`restore_list`), which their names (device, seq) do not
            # keep: `restore.complete` follows it. Only an order: each bundle is verified as it is applied.
            engine.atomic_write(Path(to_dir) / "restore" / RESTORE_ORDER, ("\n".join(order) + "\n").encode())
    for row in outbound(session, ward_device):
        name, cipher, sig = outbox.materialize(session.store, row, signer)
        engine.atomic_write(Path(to_dir) / (name + ".minisig"), sig)
        engine.atomic_write(Path(to_dir) / name, cipher)
        out.append(Path(to_dir) / name)
    with ledger_store(session) as ledger:
        name, data, rsig = receipts.make(ledger, ward_device, signer)
    engine.atomic_write(Path(to_dir) / (name + ".minisig"), rsig)
    engine.atomic_write(Path(to_dir) / name, data)
    out.append(Path(to_dir) / name)
    return out


class HeldRule(TypedDict):
    """A bundle held unmerged by a domain rule (`sync_held` row): `detail` names what the coordinator resolves."""

    device: str
    bundle_seq: int
    reason: str
    detail: str
    file: str | None
    received_at: str


class HubRecord(TypedDict):
    """One ward record as the hub holds it (`hub records`): current values after its amendments."""

    event_id: str
    form: str
    subject: str | None
    created_at: str
    created_by: str | None
    version: int
    last_event: str
    data: dict[str, Any]
    """A record's values, keyed by the protocol's field names: the fields are data, not code."""


class HubStatus(TypedDict):
    """`hub status --json`: each device's chain and last bundle, what is held or refused, the open work."""

    devices: list[dict[str, Any]]
    refused: list[dict[str, Any]]
    gaps_held: list[dict[str, Any]]
    forks: list[dict[str, Any]]
    clashes: list[dict[str, Any]]
    held_rules: list[HeldRule]
    conflicts: int
    reading_conflicts: int
    open_queries: int
    protocol_conflicts: list[protocol.ContentConflict]
    """Versions loaded with different files under one id and version (`protocol.content_conflicts`)."""


def status(session: Session) -> HubStatus:
    session.require("audit.read", what="read hub status")
    require_hub(session)
    store = session.store
    with ledger_store(session) as ledger:
        return _status(session, store, ledger)


def _status(session: Session, store: Store, ledger: SqlStore) -> HubStatus:
    """`status`: the registry and refusals from the hub's file; chains, ledger, queries and the wards'
    records (their conflicting amendments) from `ledger` (the same store at a SQLCipher hub)."""
    from wardcrf.coldchain import readings as coldchain_readings  # the cold chain is a feature of its own

    devs = []
    for d in registry.devices(store):
        head = ledger.one("SELECT seq, hash FROM chain_heads WHERE device = ?", (d["device"],))
        last = ledger.one(
            "SELECT bundle_seq, applied_at FROM sync_applied WHERE device = ?"
            " ORDER BY bundle_seq DESC LIMIT 1",
            (d["device"],),
        )
        devs.append(
            {
                "device": d["device"],
                "site": d["site"],
                "name": d["name"],
                "status": d["status"],
                "flag": d["flag_reason"],
                "events": head[0] if head else 0,
                "last_bundle": last[0] if last else 0,
                "last_bundle_at": last[1] if last else None,
                "last_receipt_seq": head[0] if head else 0,
            }
        )
    held = ledger.rows(
        "SELECT device, bundle_seq, reason, detail, received_at FROM sync_held"
        " WHERE resolved_at IS NULL ORDER BY device, bundle_seq"
    )
    refused = store.rows(
        "SELECT device, site, file, reason, at FROM sync_refusals ORDER BY at DESC, event_id DESC LIMIT 20"
    )
    return {
        "devices": devs,
        "refused": refused,
        "gaps_held": [h for h in held if h["reason"] == "gap"],
        "forks": [h for h in held if h["reason"] == "fork"],
        "clashes": [h for h in held if h["reason"] == "clash"],
        "held_rules": cast(list[HeldRule], [h for h in held if h["reason"] not in ("gap", "fork", "clash")]),
        "conflicts": len(records.conflicts(ledger)),
        "reading_conflicts": len(coldchain_readings.conflicts(ledger)),
        # the wards' answers are where their events are; the hub's own queries are projected there too
        "open_queries": len(registry.queries(ledger, "open")) + len(registry.queries(ledger, "answered")),
        # one version loaded with different files by different laptops: their records are read under one;
        # at a PostgreSQL hub the hub's own loads are in its file, the wards' in the database (as exports read)
        "protocol_conflicts": protocol.content_conflicts(store, wards=None if ledger is store else ledger),
    }


def conflicts(session: Session) -> list[dict[str, Any]]:
    """Concurrent amendments of one field from two devices, where the wards' records are (`ledger_store`)."""
    session.require("audit.read", what="list conflicts")
    with ledger_store(session) as ledger:
        return records.conflicts(ledger)


MAX_LISTED = 100_000
"""`records_list` returns at most this many records at once (`limit` pages past it)."""


def records_list(
    session: Session,
    *,
    form: str | None = None,
    participant: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[HubRecord]:
    """The wards' records as this hub holds them (current values after amendments), oldest first.

    Read where the wards' records are (`ledger_store`: the hub's file, or its
    PostgreSQL database), so the listing is the same on both engines: event
    id, form, subject, who and when, the version (1 + amendments applied), the
    last event that changed it and its values.
    """
    session.require("record.read", what="list the wards' records")
    require_hub(session)
    if not 0 < limit <= MAX_LISTED or offset < 0:
        raise UsageError(
            f"a page of the wards' records holds 1 to {MAX_LISTED} records from an offset of 0 or more;"
            f" not {limit} from {offset}"
        )
    where: list[str] = []
    params: list[Any] = []
    if form is not None:
        where.append("form = ?")
        params.append(form)
    if participant is not None:
        where.append("subject = ?")
        params.append(f"participant:{participant}")
    sql = (
        "SELECT event_id, form, subject, created_at, created_by, version, last_event, data FROM records"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY created_at, event_id LIMIT ? OFFSET ?"
    )
    with ledger_store(session) as ledger:
        rows = ledger.rows(sql, (*params, limit, offset))
    for r in rows:
        r["data"] = json.loads(r["data"])
    return cast(list[HubRecord], rows)


def reading_conflicts(session: Session) -> list[dict[str, Any]]:
    """Logger readings two devices' files disagree on (the first file's value is the one indexed), read
    where the wards' readings are (`ledger_store`: the hub's file, or its PostgreSQL database)."""
    session.require("audit.read", what="list conflicting logger readings")
    from wardcrf.coldchain import readings

    with ledger_store(session) as ledger:
        return readings.conflicts(ledger)


def clashes(session: Session) -> list[dict[str, Any]]:
    """Bundles held because they would merge two participants under one id (unresolved)."""
    session.require("audit.read", what="list participant-id clashes")
    require_hub(session)
    with ledger_store(session) as ledger:
        return ledger.rows(
            "SELECT device, bundle_seq, detail, file, received_at FROM sync_held"
            " WHERE reason = 'clash' AND resolved_at IS NULL ORDER BY device, bundle_seq"
        )


def held_rules(session: Session) -> list[HeldRule]:
    """Bundles held unmerged by a domain rule (a kit given twice, a record out of sequence, ...), unresolved.

    Each row's `detail` names what the coordinator resolves (for a kit: the kit, both participants, both
    records and both devices); `hub status --json` lists the same under "held_rules".
    """
    session.require("audit.read", what="list bundles held for the coordinator")
    require_hub(session)
    with ledger_store(session) as ledger:
        return cast(
            list[HeldRule],
            ledger.rows(
                "SELECT device, bundle_seq, reason, detail, file, received_at FROM sync_held"
                " WHERE reason NOT IN ('gap', 'fork', 'clash') AND resolved_at IS NULL ORDER BY device, bundle_seq"
            ),
        )


# -- replacement laptop ---------------------------------------------------------------


def restore_list(session: Session, new_device: str) -> list[dict[str, Any]]:
    """Original bundles of the new device's site, in the order this hub applied them, for a replacement laptop.

    The hub's order, not device by device: a laptop that was itself restored records under a protocol
    version another device's bundle loaded (its own chain holds no `protocol.loaded` of it), and the hub
    applied that bundle first. Device by device, the new laptop would read such records before their
    version arrives. Each device's bundles stay in their chain's order (the hub applied them so).
    """
    require_hub(session)
    store = session.store
    with LOCK:
        dev = registry.device(store, new_device)
        if dev is None or dev["status"] != "active":
            raise Refused(f"device {new_device} is not an active registered device")
        # The ledger of kept bundles and the log order are where the wards' data is: the hub's file, or
        # its PostgreSQL database (`ledger_store`, which copies the registry there first).
        with ledger_store(session) as ledger:
            return ledger.rows(
                "SELECT a.device, a.bundle_seq, a.file FROM sync_applied a"
                " JOIN sync_devices d ON d.device = a.device"
                " LEFT JOIN events e ON e.device = a.device AND e.seq = a.first_seq"
                " WHERE d.site = ? AND a.device != ? ORDER BY coalesce(e.pos, 0), a.device, a.bundle_seq",
                (dev["site"], new_device),
            )


def restore_bundle(
    session: Session, new_device: str, device: str, bundle_seq: int
) -> tuple[str, bytes, bytes]:
    """A device's original archive, re-encrypted to the new laptop and signed by the hub (in memory).

    `restore_bundle_into` writes it to a file instead; this holds the new
    ciphertext once (the kept bundle and the plaintext are streamed).
    """
    import io

    buf = io.BytesIO()
    name, sig = restore_bundle_into(session, new_device, device, bundle_seq, buf)
    return name, buf.getvalue(), sig


def restore_bundle_into(
    session: Session, new_device: str, device: str, bundle_seq: int, out: BinaryIO
) -> tuple[str, bytes]:
    """A device's original archive, re-encrypted to the new laptop, written to `out`; returns (name, hub's signature).

    The archive (manifest, events, photos, SHA256SUMS and the device's own
    signature over it) is unchanged, so the new laptop checks origin against
    the device key it learns from the hub's registry events. It is decrypted
    as a stream straight into the new encryption (`bundle.reencrypt_into`):
    nothing of the bundle is held whole, whatever its size.
    """
    store = session.store
    signer = devicekeys.signer(session)
    with LOCK:
        dev = registry.device(store, new_device)
        row = None
        if dev is not None and dev["status"] == "active":
            with ledger_store(session) as ledger:  # the kept bundles' ledger (`restore_list`)
                row = ledger.one(
                    "SELECT a.file FROM sync_applied a JOIN sync_devices d ON d.device = a.device"
                    " WHERE a.device = ? AND a.bundle_seq = ? AND d.site = ?",
                    (device, bundle_seq, dev["site"]),
                )
        if dev is None or row is None or not row[0]:
            raise Refused(f"no bundle {bundle_seq} of device {device} for {new_device}")
        path = kept_file(session, row[0])
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise Refused(
                f"the hub's kept bundle {path.name} cannot be read ({exc.strerror or exc}); "
                "restore the hub's sync/applied folder from its backup"
            ) from None
        manifest, digest = bundle.reencrypt_into(
            path, [_identity(store)], [dev["age_recipient"]], out, path.name
        )
        comment = f"{bundle.FORMAT} file={path.name} relay={signer.device} manifest={bundle.sha256(manifest)}"
        from . import signing

        return path.name, signing.sign_digest(signer.minisign_secret, digest, comment)
