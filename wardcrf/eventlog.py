"""The event log: append, read and verify the hash-chained audit trail.

`append` is the one way a local change enters the database. It builds the
event's canonical line (see `canonical`), chains it to the device's previous
event, writes it and runs the projectors for its type, all in one
transaction: either the event and every projection row it implies are saved,
or nothing is. `ingest` is the same write for an event that arrived from
another device (sync); it never invents fields, it checks them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import authority, behind, canonical, text
from .clock import FAR_AHEAD, HLC, ZERO, iso_utc, now_utc, parse_iso, utc_offset, wall_millis, zone
from .errors import Refused
from .registration import require_installed
from .sqlstore import SqlStore, portable
from .store import Store

# Every key of an event line besides "prev". Absent optional values are null,
# so every line has the same keys and readers need no special cases.
EVENT_KEYS = (
    "amends",
    "body",
    "device",
    "hlc",
    "id",
    "protocol",
    "reason",
    "role",
    "seq",
    "site",
    "subject",
    "ts",
    "type",
    "tz",
    "user",
    "zone",
)


_LINE_KEYS = frozenset(("prev", *EVENT_KEYS))


@dataclass(frozen=True)
class Event:
    """One entry of the audit trail, exactly as hashed and shipped."""

    id: str
    device: str
    seq: int
    prev: str
    hash: str
    hlc: str
    ts: str
    tz: str
    zone: str
    site: str
    user: str | None
    role: str | None
    type: str
    subject: str | None
    body: dict[str, Any]
    reason: str | None
    amends: str | None
    protocol: dict[str, str] | None
    line: str
    spelled_alike: bool = field(default=False, repr=False, compare=False)
    """The line was shown canonical by `canonical.canonical_fields`: msgspec spells every value parsed
    from it as the canonical encoder does (`canonical.dumps_parsed`), so a projector may re-encode a
    part of the body that cheaply. False for an event built by a caller (`append`) or read otherwise."""

    @classmethod
    def from_line(cls, line: str) -> Event:
        # A stored or synced line is canonical: shown so cheaply (and then parsed by msgspec, to the
        # value the standard library reads) where it can be, else read by the standard library.
        prev = line[9:73]
        fast = (
            canonical.canonical_fields(line[75:])
            if line.startswith('{"prev":"') and line[73:75] == '",' and prev.isalnum() and prev.isascii()
            else None
        )
        obj = {"prev": prev, **fast} if fast is not None else json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("event line is not a JSON object")
        if len(obj) != len(_LINE_KEYS) or not _LINE_KEYS.issuperset(obj):
            missing = [k for k in ("prev", *EVENT_KEYS) if k not in obj]
            if missing:
                raise ValueError(f"event line lacks {', '.join(missing)}")
            extra = sorted(set(obj) - _LINE_KEYS)
            raise ValueError(f"event line has unknown keys {', '.join(extra)}")
        return cls.adopt(obj, line, canonical.line_hash(line), spelled_alike=fast is not None)

    @classmethod
    def adopt(cls, obj: dict[str, Any], line: str, hash_: str, *, spelled_alike: bool) -> Event:
        """The event of a line's parsed object `obj`, whose keys were shown to be exactly the line's
        (`prev` and `EVENT_KEYS`), with its `hash_`: `obj` becomes the event's attributes, with its body
        (None read as {}), line, hash and `spelled_alike` added. The caller gives `obj` up.

        The same event `Event(...)` builds field by field; the frozen dataclass's `__init__` sets each
        of its twenty attributes through `object.__setattr__`, which cost a fifth of a hub's chain
        check per line. The instance stays frozen: nothing assigns to it afterwards."""
        obj["body"] = obj["body"] or {}
        obj["hash"] = hash_
        obj["line"] = line
        obj["spelled_alike"] = spelled_alike
        event = object.__new__(cls)
        event.__dict__.update(obj)
        return event

    @property
    def local_time(self) -> datetime:
        """The wall time as the ward saw it, in the device's zone."""
        return parse_iso(self.ts).astimezone(zone(self.zone))


@dataclass(frozen=True)
class Author:
    """Who is appending, and under which protocol. Built from a signed-in session."""

    user: str | None
    role: str | None
    protocol: dict[str, str] | None = None


@dataclass
class AppendResult:
    event: Event
    warnings: list[str] = field(default_factory=list)


Projector = Callable[[Store, Event], None]
_PROJECTORS: dict[str, list[Projector]] = {}
_EVERY: list[Projector] = []
_FOR_TYPE: dict[str, list[Projector]] = {}  # type -> its projectors then the every-event ones


def add_projector(fn: Projector, *types: str) -> None:
    """Add a function that updates projection tables for event types (features register it: `features`).

    Projectors must be deterministic functions of the store and the event
    (never the clock, never the environment): `db rebuild` replays the log
    through them and must produce identical rows.
    """
    for t in types:
        fns = _PROJECTORS.setdefault(t, [])
        if fn not in fns:
            fns.append(fn)
    _FOR_TYPE.clear()


def every_event_projector(fn: Projector) -> Projector:
    """Register a projector that sees every event, whatever its type (after the type's own).

    For indexes keyed by what a line contains rather than by its type (the
    photos a line references: `sync.pending`). It runs on every append, every
    import and every replay, so it must return at once for lines it ignores,
    and it must never refuse an event: `append` gives an event a savepoint only
    for its type's own projectors.
    """
    if fn not in _EVERY:
        _EVERY.append(fn)
        _FOR_TYPE.clear()
    return fn


def projectors_for(type_: str) -> list[Projector]:
    """The type's own projectors, then the every-event ones, in registration order."""
    fns = _FOR_TYPE.get(type_)
    if fns is None:
        fns = _FOR_TYPE[type_] = _own_projectors(type_) + _EVERY
    return fns


def has_projections(type_: str) -> bool:
    """Does the type build projection rows of its own (beyond the every-event indexes)?"""
    return bool(_own_projectors(type_))


def _own_projectors(type_: str) -> list[Projector]:
    require_installed()
    return _PROJECTORS.get(type_, [])


@dataclass(frozen=True)
class DeviceContext:
    site: str
    device: str
    zone: str
    kind: str = "ward"  # 'ward' or 'hub': what this device may originate (`authority`)

    @classmethod
    def load(cls, store: Store) -> DeviceContext:
        row = store.one("SELECT site, device, zone, kind FROM site WHERE id = 1")
        if row is None:
            raise Refused("this database has no site identity (not initialised)")
        return cls(site=row[0], device=row[1], zone=row[2], kind=row[3])


def append(
    store: Store,
    ctx: DeviceContext,
    author: Author,
    *,
    type: str,
    subject: str | None = None,
    body: dict[str, Any] | None = None,
    reason: str | None = None,
    amends: str | None = None,
) -> AppendResult:
    """Append one local event and update its projections, atomically.

    This is the only function that creates events. Raises `Refused` (and
    saves nothing) when this device or the author's role may not originate
    the type (`authority.check_append`) or a projector refuses the event.

    Inside an enclosing transaction each event gets a savepoint, so a
    projector that refuses it undoes its rows and the caller may carry on.
    An event type without projectors of its own (the every-event indexes
    never refuse) is one INSERT, which SQLite applies
    whole or not at all, and nothing in memory (the pending chain head)
    changes before that INSERT succeeds: it needs no savepoint, and a bulk
    append skips two statements and a snapshot of the chain heads per event.
    Outside a transaction every event still commits on its own.
    """
    authority.check_append(ctx.kind, author.role, type)
    _check_body(type, body or {})
    behind.check(store)
    warnings: list[str] = []
    fns = projectors_for(type)
    own = _own_projectors(type)
    scope = store.transaction() if own or not store.in_transaction else contextlib.nullcontext()
    with scope:
        head = _head(store, ctx.device)
        top = _top_hlc(store)
        seq, prev, own_hlc = (
            (head[0] + 1, head[1], HLC.decode(head[2])) if head else (1, canonical.GENESIS, ZERO)
        )
        # One device appending in bulk is its own top clock: decode the string once.
        known = own_hlc if head and top == head[2] else (HLC.decode(top) if top else ZERO)
        now = now_utc()
        wall = wall_millis(now)
        if head and wall < own_hlc.millis - 1000:
            warnings.append(
                f"clock warning: this laptop's time {iso_utc(now)} is earlier than its last "
                "event; check the clock (the event is saved, ordered by its logical clock)"
            )
        elif head and own_hlc.millis and wall > own_hlc.millis + FAR_AHEAD.total_seconds() * 1000:
            warnings.append(
                f"clock warning: this laptop's time {iso_utc(now)} is more than 24 h after its "
                "last event; check the clock if that is unexpected"
            )
        hlc = max(own_hlc, known).tick(wall)
        fields: dict[str, Any] = {
            "amends": amends,
            "body": body or {},
            "device": ctx.device,
            "hlc": hlc.encode(),
            "id": f"{ctx.device}-{seq}",
            "protocol": author.protocol,
            "reason": reason,
            "role": author.role,
            "seq": seq,
            "site": ctx.site,
            "subject": subject,
            "ts": iso_utc(now),
            "type": type,
            "tz": utc_offset(now, ctx.zone),
            "user": author.user,
            "zone": ctx.zone,
        }
        line = _checked_line(prev, fields)
        event = Event(
            id=fields["id"],
            device=ctx.device,
            seq=seq,
            prev=prev,
            hash=canonical.line_hash(line),
            hlc=fields["hlc"],
            ts=fields["ts"],
            tz=fields["tz"],
            zone=ctx.zone,
            site=ctx.site,
            user=author.user,
            role=author.role,
            type=type,
            subject=subject,
            body=fields["body"],
            reason=reason,
            amends=amends,
            protocol=author.protocol,
            line=line,
        )
        _write(store, event, projectors=fns)
    return AppendResult(event, warnings)


def _checked_line(prev: str, fields: dict[str, Any]) -> str:
    """The canonical line, after the floor every local event stands on (`text.check_stored`).

    No control, bidirectional or zero-width character in any text, whatever
    service appended it; the reason and subject are one line; no NaN or
    infinity (JSON has no spelling for them). One regular-expression look at
    the finished line decides whether the body needs walking at all.
    """
    try:
        line = canonical.event_line(prev, fields)
    except ValueError as exc:
        if "JSON compliant" not in str(exc) and "Out of range float" not in str(exc):
            raise
        raise Refused(
            f"{fields['type']}: a number is not finite (NaN or infinity cannot be stored); nothing was saved"
        ) from None
    if text.may_hold_refused(line):
        for key in ("reason", "subject"):
            if fields[key] is not None:
                text.check(fields[key], field=key)
        text.check_stored(fields["body"])
    return line


def _check_body(type_: str, body: dict[str, Any]) -> None:
    """This device's own events fit the schema every importer checks (`eventbodies`):
    an event the hub would refuse is refused here, while its author can still fix it."""
    from .eventbodies import check_body

    problem = check_body(type_, body)
    if problem:
        raise Refused(f"{type_} not saved: {problem}")


def ingest(store: Store, event: Event) -> None:
    """Write an event that arrived from another device (sync), with projections.

    The caller (sync import) has already verified the chain and signatures;
    this checks that the line continues the device's chain as held here.
    """
    with store.transaction():
        head = _head(store, event.device)
        want_seq, want_prev = (head[0] + 1, head[1]) if head else (1, canonical.GENESIS)
        if event.seq != want_seq or event.prev != want_prev:
            raise Refused(
                f"event {event.id} does not continue device {event.device}'s chain (expected seq {want_seq})"
            )
        _write(store, event)


_BODIES_OWNED: ContextVar[bool] = ContextVar("bodies_owned", default=False)


def bodies_owned() -> bool:
    """True while the events being projected were parsed from their lines for this write alone.

    A replay's events and a synced batch's (`ingest_many`) were parsed from
    their canonical lines a moment ago and are shared with no caller, so a
    projector may keep their bodies as they are (the records projector then
    does not parse back the JSON it just wrote: a hub importing a million
    records parses each line once). An event built by a caller (`append`)
    is not owned: its body is the caller's dict.
    """
    return _BODIES_OWNED.get()


@contextlib.contextmanager
def owned_bodies() -> Iterator[None]:
    """Mark the events projected inside as parsed for this write alone (`bodies_owned`)."""
    token = _BODIES_OWNED.set(True)
    try:
        yield
    finally:
        _BODIES_OWNED.reset(token)


def ingest_many(
    store: SqlStore, events: Iterable[Event], *, project: bool = True, unprojected: Collection[str] = ()
) -> int:
    """`ingest` for a run of events (a verified sync bundle), in one transaction.

    The same continuity check per event, then one multi-row insert and the
    projectors in log order. Projectors already run with later events
    present (that is how `db rebuild` replays), so inserting the run first
    changes nothing they see that a rebuild would not; it saves a
    savepoint and a statement round-trip per event when a hub imports a
    backlog of a million events. Returns the number written.

    `project=False` writes the events and their chain heads only;
    `unprojected` names types written without their projectors (a PostgreSQL
    hub's reference data, `sync.engine.DEFERRED_PROJECTIONS`). On a store
    other than SQLCipher (`SqlStore.holds_projections` false) only projectors
    declared `common_dialect` run: its importer refuses beforehand, by name,
    a bundle that needs any other (`sync.engine.check_portable`).
    """
    batch = list(events)
    with store.transaction():
        heads: dict[str, tuple[int, str]] = {}
        for event in batch:
            head = heads.get(event.device)
            if head is None:
                h = _head(store, event.device)
                head = (h[0], h[1]) if h else (0, canonical.GENESIS)
            if event.seq != head[0] + 1 or event.prev != head[1]:
                raise Refused(
                    f"event {event.id} does not continue device {event.device}'s chain "
                    f"(expected seq {head[0] + 1})"
                )
            heads[event.device] = (event.seq, event.hash)
        rows = [
            (e.id, e.device, e.seq, e.prev, e.hash, e.hlc, e.ts, e.user, e.type, e.subject, e.amends, e.line)
            for e in batch
        ]
        store.executemany(
            'INSERT INTO events (id, device, seq, prev, hash, hlc, ts, "user", type, subject, amends, line)'
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        # The chain heads and the newest clock, once for the run (what `_write` notes event by event;
        # no projector reads them: they are this transaction's, written just before its commit).
        if batch:
            _note_heads(store, batch)
        native = store if isinstance(store, Store) else None
        with owned_bodies(), store.batched_inserts():
            for event in batch:
                if not project or event.type in unprojected:
                    continue
                fns = projectors_for(event.type)
                if native is not None:
                    for fn in fns:
                        fn(native, event)
                else:
                    # Another engine (a PostgreSQL hub) runs only code whose SQL it speaks
                    # (`common_dialect`); anything else raises `NotPortable` before it runs.
                    for runner in [portable(fn) for fn in fns]:
                        runner(store, event)
    return len(batch)


def _note_heads(store: SqlStore, batch: list[Event]) -> None:
    """Note a run's chain heads and its newest clock for the commit (`_flush_heads`), as `_write` notes
    one event's: each device's head is its last event of the run, the top clock the largest seen."""
    if _flush_heads not in store.before_commit:
        store.before_commit.append(_flush_heads)
    for device, last in {e.device: e for e in batch}.items():
        store.pending_heads[device] = (last.seq, last.hash, last.hlc)
    newest = max(e.hlc for e in batch)
    top = _top_hlc(store)
    store.pending_heads[_TOP] = (0, "", newest if top is None or newest > top else top)


def head(store: SqlStore, device: str) -> tuple[int, str]:
    """(seq, hash) of a device's last event, including the open transaction's; (0, GENESIS) if none.

    Chain heads are written to `chain_heads` once, when the outermost
    transaction commits; a caller deciding inside a longer transaction (a
    hub applying several bundles under one commit) must ask here.
    """
    h = _head(store, device)
    return (h[0], h[1]) if h else (0, canonical.GENESIS)


def _head(store: SqlStore, device: str) -> tuple[int, str, str] | None:
    """(seq, hash, hlc) of a device's last event, including this transaction's appends."""
    pending = store.pending_heads.get(device)
    if pending is not None:
        return pending
    row = store.one("SELECT seq, hash, hlc FROM chain_heads WHERE device = ?", (device,))
    return (row[0], row[1], row[2]) if row else None


_TOP = "\x00top"  # pseudo-device key caching max(hlc) for the open transaction


def _top_hlc(store: SqlStore) -> str | None:
    cached = store.pending_heads.get(_TOP)
    if cached is not None:
        return cached[2]
    top = store.scalar("SELECT max(hlc) FROM chain_heads")
    return str(top) if top else None


def _flush_heads(store: SqlStore) -> None:
    """Write the chain heads touched in this transaction, just before it commits."""
    for device, (seq, hash_, hlc) in store.pending_heads.items():
        if device == _TOP:
            continue
        store.execute(
            "INSERT INTO chain_heads (device, seq, hash, hlc) VALUES (?,?,?,?)"
            " ON CONFLICT(device) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
            " hlc = CASE WHEN excluded.hlc > chain_heads.hlc THEN excluded.hlc ELSE chain_heads.hlc END",
            (device, seq, hash_, hlc),
        )


def _write(
    store: SqlStore, event: Event, *, insert: bool = True, projectors: list[Projector] | None = None
) -> None:
    if insert:
        store.execute(
            'INSERT INTO events (id, device, seq, prev, hash, hlc, ts, "user", type, subject, amends, line)'
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                event.id,
                event.device,
                event.seq,
                event.prev,
                event.hash,
                event.hlc,
                event.ts,
                event.user,
                event.type,
                event.subject,
                event.amends,
                event.line,
            ),
        )
    if _flush_heads not in store.before_commit:
        store.before_commit.append(_flush_heads)
    store.pending_heads[event.device] = (event.seq, event.hash, event.hlc)
    top = _top_hlc(store)
    if top is None or event.hlc > top:
        store.pending_heads[_TOP] = (0, "", event.hlc)
    elif _TOP not in store.pending_heads:
        store.pending_heads[_TOP] = (0, "", top)
    fns = projectors_for(event.type) if projectors is None else projectors
    if not fns:
        return
    if not isinstance(store, Store):
        # Another engine (a PostgreSQL hub) runs only code whose SQL it speaks (`common_dialect`);
        # anything else raises `NotPortable` before it runs (its importer refused such a bundle already).
        for runner in [portable(fn) for fn in fns]:
            runner(store, event)
        return
    for fn in fns:
        fn(store, event)


# -- reading -----------------------------------------------------------------------


def get(store: SqlStore, event_id: str) -> Event | None:
    line = store.scalar("SELECT line FROM events WHERE id = ?", (event_id,))
    return Event.from_line(line) if line is not None else None


def iter_events(store: SqlStore, where: str = "", params: Any = (), order: str = "pos") -> Iterator[Event]:
    sql = "SELECT line FROM events" + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
    for (line,) in store.execute(sql, params):
        yield Event.from_line(line)


def count(store: SqlStore) -> int:
    return int(store.scalar("SELECT count(*) FROM events") or 0)


def new_device_id() -> str:
    """8 random Crockford-base32 characters: unique per `init`, easy to read aloud."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(8))


# -- verification --------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    device: str
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"device {self.device} seq {self.seq}" if self.seq is not None else f"device {self.device}"
        return f"{where}: {self.what}"


_COLUMNS = ("id", "device", "seq", "prev", "hash", "hlc", "ts", "user", "type", "subject", "amends")


def verify_chains(store: SqlStore) -> tuple[int, list[ChainProblem]]:
    """Check every device chain; returns (events checked, first problem per device).

    Catches rows edited, deleted, inserted or reordered by anyone who went
    around wardcrf (for example with the raw key and the triggers dropped):
    each line must hash to its stored hash, link to the previous hash, carry
    consecutive seqs from 1, agree with its indexed columns, sit in the log
    order (`pos`) after its predecessor, and end where the chain head says it
    ends.
    """
    problems: dict[str, ChainProblem] = {}
    n = 0
    cur = store.execute(
        'SELECT id, device, seq, prev, hash, hlc, ts, "user", type, subject, amends, line, pos'
        " FROM events ORDER BY device, seq"
    )
    device: str | None = None
    expect_seq = 1
    expect_prev = canonical.GENESIS
    last_pos = 0
    sha = canonical.line_hash
    last_seq: dict[str, tuple[int, str]] = {}
    loads = json.loads
    for row in cur:
        n += 1
        dev = row[1]
        if dev != device:
            device, expect_seq, expect_prev, last_pos = dev, 1, canonical.GENESIS, 0
        if dev in problems:
            continue
        seq, line = row[2], row[11]
        what = None
        if row[12] < last_pos:
            what = _out_of_order(seq)
        elif seq != expect_seq:
            what = (
                f"missing event(s) before this one (expected seq {expect_seq})"
                if seq > expect_seq
                else "duplicate or reordered seq"
            )
        elif sha(line) != row[4]:
            what = "stored line does not match its hash (edited)"
        elif row[3] != expect_prev or not line.startswith('{"prev":"' + expect_prev + '"'):
            what = (
                "chain broken: prev does not match the previous event's hash (inserted, deleted or reordered)"
            )
        else:
            try:
                obj = loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                what = "stored line is not valid JSON"
            else:
                for i, col in enumerate(_COLUMNS):
                    if col == "hash":
                        continue
                    if obj.get(col) != row[i]:
                        what = f"column {col} differs from the hashed line (edited)"
                        break
        if what:
            problems[dev] = ChainProblem(dev, seq, what)
            continue
        expect_seq = seq + 1
        expect_prev = row[4]
        last_pos = row[12]
        last_seq[dev] = (seq, row[4])
    for dev, seq_, hash_ in store.execute("SELECT device, seq, hash FROM chain_heads"):
        if dev in problems:
            continue
        held = last_seq.get(dev)
        if held is None:
            problems[dev] = ChainProblem(dev, None, f"chain head says seq {seq_} but no events are present")
        elif held != (seq_, hash_):
            problems[dev] = ChainProblem(
                dev,
                held[0],
                f"log ends at seq {held[0]} but its head says seq {seq_} (events deleted at the end?)",
            )
    for dev in last_seq:
        if dev not in problems and store.one("SELECT 1 FROM chain_heads WHERE device = ?", (dev,)) is None:
            problems[dev] = ChainProblem(dev, None, "device has events but no chain head")
    return n, sorted(problems.values(), key=lambda p: (p.device, p.seq or 0))


def _out_of_order(seq: int) -> str:
    return (
        f"stored before seq {seq - 1} in the log order (pos): the order that rebuild, bundles and"
        " exports follow was changed around wardcrf"
    )


def order_problem(store: SqlStore) -> ChainProblem | None:
    """The first event stored (by `pos`) before its predecessor in its own chain, if any.

    `pos` is the order everything replays in (`db rebuild`, bundles, exports);
    within one device it must follow seq. Checked before a replay, which would
    otherwise rebuild the projections from a reordered log without a word.
    """
    row = store.one(
        "SELECT device, seq FROM (SELECT device, seq, pos,"
        " lag(pos) OVER (PARTITION BY device ORDER BY seq) AS before FROM events) AS o"
        " WHERE before > pos ORDER BY device, seq LIMIT 1"
    )
    return ChainProblem(row[0], row[1], _out_of_order(row[1])) if row else None
