"""The read model every export and report shares: records, their history, who and when.

Built only over the foundation tables (`events`, `records`, `amendments`,
`signatures`, `users`, `protocols`), which a ward and a hub both hold, so
the same export runs on either. Records are read in log order (`events.pos`)
and streamed, so a site with tens of thousands of records never needs them
all in memory at once.

At a hub whose wards' data is in PostgreSQL (docs/hub-postgres.md) those
tables are read there (`wards`), in the SQL both engines run, while the
site's own file (`store`) keeps the hub's own events and what only it
projects (codings, SDV marks, queries). The log is then the two logs merged
in the order the hub received them (`events`): its own events by their
time, each ward event by its bundle's `applied_at`, which is where a
SQLCipher hub's single log puts them.

Each record is read with the protocol version it was captured under (the
event names it), so an old record keeps its old field definitions.
"""

from __future__ import annotations

import bisect
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypedDict, cast

from .. import eventlog, ids, text
from .. import protocol as protocols
from ..errors import Refused
from ..eventlog import Event
from ..protocol import Field, Form, Protocol
from ..records import Record
from ..sqlstore import SqlStore
from ..store import Store

if TYPE_CHECKING:
    from ..site import Session

PARTICIPANT_PREFIX = "participant:"


def participant_of(subject: str | None) -> str | None:
    """``participant:P-001`` -> ``P-001``; None for other subjects."""
    if subject and subject.startswith(PARTICIPANT_PREFIX):
        return subject[len(PARTICIPANT_PREFIX) :]
    return None


@dataclass(frozen=True)
class ProvenancedRecord(Record):
    """A record with the provenance an export prints beside it: where, under which protocol, last change.

    The record itself is `records.Record` (one concept, one owner); an
    export adds only what the projection does not hold.
    """

    site: str
    device: str
    protocol_id: str | None
    protocol_version: str | None
    last_changed_at: str
    last_changed_by: str | None

    @property
    def participant(self) -> str | None:
        return participant_of(self.subject)

    @property
    def amended(self) -> bool:
        return self.version > 1


@dataclass(frozen=True)
class Amendment:
    event_id: str
    target_event: str
    field: str
    old: Any
    new: Any
    reason: str
    user: str | None
    ts: str


@dataclass(frozen=True)
class Signature:
    event_id: str
    target: str
    subject: str | None
    meaning: str
    user: str
    full_name: str
    signed_at: str
    site: str
    valid: bool

    @property
    def status(self) -> str:
        return "valid" if self.valid else "changed since signed"


_RECORD_COLUMNS = (
    "event_id", "form", "subject", "data", "created_at", "created_by", "last_event", "version", "device",
    "site", "protocol_id", "protocol_version", "last_ts", "last_user",
)  # fmt: skip
"""The columns `_record_sql` selects, in its order."""


def _record_sql(store: SqlStore) -> str:
    return f"""
SELECT r.event_id, r.form, r.subject, r.data, r.created_at, r.created_by, r.last_event,
       r.version, e.device, {store.json_text("e.line", "site")} AS site,
       {store.json_text("e.line", "protocol", "id")} AS protocol_id,
       {store.json_text("e.line", "protocol", "version")} AS protocol_version,
       le.ts AS last_ts, le."user" AS last_user
FROM records r
JOIN events e ON e.id = r.event_id
LEFT JOIN events le ON le.id = r.last_event
"""


class SiteRow(TypedDict):
    """Whose database an export is read from (the `site` table): every writer names the site."""

    site: str
    device: str
    device_name: str
    kind: str
    """ward or hub."""
    zone: str


@dataclass
class Dataset:
    """What an export reads. Open with `Dataset.for_session` (checks permission)."""

    store: Store
    """The site's own file: its site row, its own events, and what only it projects (codings, SDV)."""
    action: str = "export.data"
    wards: SqlStore | None = None
    """Where the wards' records, their history and the protocol versions are: `store` (None), or a
    PostgreSQL hub's database, read in one snapshot (`sync.hub.wards_data`)."""
    _protocol_cache: dict[tuple[str | None, str | None], Protocol] = field(default_factory=dict)
    _id_field_names: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.wards is self.store:
            self.wards = None

    @classmethod
    def for_session(
        cls, session: Session, action: str = "export.data", *, wards: SqlStore | None = None
    ) -> Dataset:
        """The dataset for a signed-in user; refused when a record's version is not loaded here
        (`require_versions`), before anything is written. `wards`: where the wards' records are, when
        not in the site's file (a PostgreSQL hub)."""
        session.require(action, what="export or report the trial's data")
        ds = cls.over(session.store, action) if wards is None else cls(session.store, action, wards)
        ds.require_versions()
        return ds

    @classmethod
    def over(cls, store: SqlStore, action: str = "export.data") -> Dataset:
        """The dataset of a site's store, unchecked: its file, or a PostgreSQL hub's database read in place
        (`sync.hubview.direct`), whose `beside` is the hub's file (its site row and own events)."""
        beside = getattr(store, "beside", None)
        return cls(beside, action, store) if beside is not None else cls(cast(Store, store), action)

    @property
    def data(self) -> SqlStore:
        """The store the records, amendments, signatures, users and protocol versions are read from."""
        return self.store if self.wards is None else self.wards

    @property
    def projections(self) -> Store:
        """`data`, for the readers typed on the SQLCipher store whose SQL both engines run (the participants'
        status, SDV, photographs, custody): at a PostgreSQL hub read in place its database, which they
        query the same way (docs/hub-postgres.md, "Read in place")."""
        return cast(Store, self.data)

    def unloaded_versions(self) -> list[tuple[str, str, int, str]]:
        """(protocol id, version, records, first record) for each version records were captured under
        that is not loaded here, in the order their first record was written."""
        db = self.data
        found: dict[tuple[str, str], list[Any]] = {}
        for pid, ver, eid in db.execute(
            f"SELECT v.pid, v.ver, v.id FROM (SELECT {db.json_text('e.line', 'protocol', 'id')} AS pid,"
            f" {db.json_text('e.line', 'protocol', 'version')} AS ver, e.id, e.pos"
            " FROM records r JOIN events e ON e.id = r.event_id) AS v"
            " LEFT JOIN protocols p ON p.protocol_id = v.pid AND p.version = v.ver"
            " WHERE v.pid IS NOT NULL AND v.ver IS NOT NULL AND p.protocol_id IS NULL ORDER BY v.pos"
        ):
            seen = found.setdefault((str(pid), str(ver)), [0, str(eid)])
            seen[0] += 1
        return [(pid, ver, int(n), first) for (pid, ver), (n, first) in found.items()]

    def require_versions(self) -> None:
        """Refuse, naming them, when records were captured under a protocol version not loaded here.

        A sponsor's reviewer reads every value of an export under the metadata of the version it was
        entered under (its labels, codes, units, CDISC names, which fields were asked). Another
        version standing in would relabel silently; dropping the records would lose data without a
        word. So the export is not written, and the line says which version to load (docs/exports.md,
        "A record's own version").
        """
        missing = self.unloaded_versions()
        if not missing:
            return
        named = "; ".join(
            f"{n} record(s) were captured under {text.excerpt(pid)} {text.excerpt(ver)} (first: {first})"
            for pid, ver, n, first in missing
        )
        raise Refused(
            f"{named}, which {'is' if len(missing) == 1 else 'are'} not loaded on this laptop: they cannot be "
            "read under their own version and no other version stands in; load it with "
            "`wardcrf protocol load FILE` and run this again; nothing was written"
        )

    # -- site and protocol ---------------------------------------------------------------

    @cached_property
    def site_row(self) -> SiteRow:
        rows = self.store.rows("SELECT site, device, device_name, kind, zone FROM site WHERE id = 1")
        if not rows:
            raise Refused("this database has no site identity (not initialised)")
        return cast(SiteRow, rows[0])

    @property
    def is_hub(self) -> bool:
        return self.site_row["kind"] == "hub"

    @cached_property
    def active_protocol(self) -> Protocol:
        return protocols.active(self.data)

    @cached_property
    def protocol_versions(self) -> list[Protocol]:
        """Every protocol version loaded, oldest first (an old record keeps its definitions)."""
        loaded = self.data.rows("SELECT source, protocol_id, loaded_event FROM protocols")
        order = self._arrivals([r["loaded_event"] for r in loaded])
        out = [
            protocols.parse_cached(row["source"], f"{row['protocol_id']} (loaded)")
            for row in sorted(
                (r for r in loaded if r["loaded_event"] in order), key=lambda r: order[r["loaded_event"]]
            )
        ]
        return out or [self.active_protocol]

    def protocol_for(self, record: ProvenancedRecord) -> Protocol:
        key = (record.protocol_id, record.protocol_version)
        if key not in self._protocol_cache:
            ref = {"id": key[0], "version": key[1]} if key[0] else None
            self._protocol_cache[key] = protocols.version(self.data, ref)  # type: ignore[arg-type]
        return self._protocol_cache[key]

    # -- the log, in the order this site received it ---------------------------------------

    @cached_property
    def _bundles(self) -> dict[str, tuple[list[int], list[str]]]:
        """device -> (each applied bundle's first seq, its applied_at), in seq order (`wards` only)."""
        out: dict[str, tuple[list[int], list[str]]] = {}
        for device, first, at in self.data.execute(
            "SELECT device, first_seq, applied_at FROM sync_applied WHERE first_seq IS NOT NULL"
            " ORDER BY device, first_seq"
        ):
            firsts, times = out.setdefault(str(device), ([], []))
            firsts.append(int(first))
            times.append(str(at))
        return out

    def _received(self, device: str, seq: int) -> str:
        """When this site applied the bundle holding a ward's event (`sync_applied.applied_at`)."""
        firsts, times = self._bundles.get(device, ([], []))
        i = bisect.bisect_right(firsts, seq) - 1
        return times[i] if i >= 0 else ""

    def _arrivals(self, event_ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """Each event's place in the merged log (`events`): (when received, which log, position)."""
        out: dict[str, tuple[str, int, int]] = {}
        for i in range(0, len(event_ids), 500):
            chunk = event_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for eid, ts, pos in self.store.execute(
                f"SELECT id, ts, pos FROM events WHERE id IN ({marks})", chunk
            ):
                out[str(eid)] = (str(ts), 0, int(pos))
            if self.wards is not None:
                for eid, device, seq, pos in self.wards.execute(
                    f"SELECT id, device, seq, pos FROM events WHERE id IN ({marks})", chunk
                ):
                    out.setdefault(str(eid), (self._received(str(device), int(seq)), 1, int(pos)))
        if self.wards is None:  # one log: its order
            return {k: ("", 0, v[2]) for k, v in out.items()}
        return out

    def events(self, where: str = "", params: Any = ()) -> Iterator[Event]:
        """Every event (optionally `where`, on the `events` columns), in the order this site received them.

        One log: its order (`pos`). A PostgreSQL hub's two logs are merged: the hub's own events at their
        time, each ward's at its bundle's `applied_at` (the hub's first on a tie), each log kept in its own
        order, as a SQLCipher hub's single log holds them.
        """
        if self.wards is None:
            yield from eventlog.iter_events(self.store, where, params)
            return
        for (line,) in self.merged_rows(["line"], where, params):
            yield Event.from_line(line)

    def merged_rows(self, columns: list[str], where: str = "", params: Any = ()) -> Iterator[tuple[Any, ...]]:
        """`columns` of every event (optionally `where`) in the order this site received them (`events`);
        one log's rows in its order, a PostgreSQL hub's two logs merged (`sync.hubview` numbers them so)."""
        cols = ", ".join(f'"{c}"' for c in columns)
        sql = (
            f"SELECT device, seq, ts, {cols} FROM events"
            + (f" WHERE {where}" if where else "")
            + " ORDER BY pos"
        )
        if self.wards is None:
            for row in self.store.stream(sql, params):
                yield tuple(row[3:])
            return

        def stream(store: SqlStore, own: bool) -> Iterator[tuple[str, tuple[Any, ...]]]:
            last = ""
            for row in store.stream(sql, params):
                device, seq, ts = row[0], row[1], row[2]
                last = max(last, str(ts) if own else self._received(str(device), int(seq)))
                yield last, tuple(row[3:])

        for _at, row in heapq.merge(stream(self.store, True), stream(self.wards, False), key=lambda x: x[0]):
            yield row

    def logs(self) -> list[SqlStore]:
        """The stores holding this site's events: its file, and a PostgreSQL hub's database."""
        return [self.store] if self.wards is None else [self.store, self.wards]

    def event_count(self) -> int:
        return eventlog.count(self.store) + (eventlog.count(self.wards) if self.wards is not None else 0)

    def event(self, event_id: str) -> Event | None:
        """One event, from whichever log holds it."""
        found = eventlog.get(self.data, event_id)
        return found if found is not None or self.wards is None else eventlog.get(self.store, event_id)

    def form_fields(self, form: str) -> list[Field]:
        """The union of a form's fields over all loaded versions, newest definitions first."""
        seen: dict[str, Field] = {}
        for proto in [self.active_protocol, *reversed(self.protocol_versions)]:
            f: Form | None = proto.forms.get(form)
            if f is None:
                continue
            for fd in f.fields.values():
                seen.setdefault(fd.name, fd)
        return list(seen.values())

    def form_label(self, form: str) -> str:
        for proto in [self.active_protocol, *reversed(self.protocol_versions)]:
            f = proto.forms.get(form)
            if f is not None:
                return protocols.tr(f.label)
        return form

    # -- records ----------------------------------------------------------------------

    def forms_present(self) -> list[str]:
        """Forms with at least one record, in the active protocol's order, then others."""
        present = {r[0] for r in self.data.execute("SELECT DISTINCT form FROM records")}
        order = [f for f in self.active_protocol.forms if f in present]
        return order + sorted(present - set(order))

    def forms_exported(self) -> list[str]:
        """Every form a loaded protocol version defines (active protocol's order first), then any other
        form with records (cold chain, a newer ward's form). Exports write each one, empty when it has no
        record yet, so an analysis script written for the trial runs on its first day and on every site."""
        order: dict[str, None] = dict.fromkeys(self.active_protocol.forms)
        for proto in reversed(self.protocol_versions):
            order.update(dict.fromkeys(proto.forms))
        order.update(dict.fromkeys(self.forms_present()))
        return list(order)

    def count_records(self, form: str | None = None) -> int:
        if form:
            return int(self.data.scalar("SELECT count(*) FROM records WHERE form = ?", (form,)) or 0)
        return int(self.data.scalar("SELECT count(*) FROM records") or 0)

    def records(
        self, form: str | None = None, *, subject: str | None = None, participant: str | None = None
    ) -> Iterator[ProvenancedRecord]:
        """Records in log order, optionally of one form and/or one subject."""
        where, params = [], []
        if form:
            where.append("r.form = ?")
            params.append(form)
        if participant:
            subject = PARTICIPANT_PREFIX + participant
        if subject:
            where.append("r.subject = ?")
            params.append(subject)
        sql = _record_sql(self.data) + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.pos"
        for values in self.data.stream(sql, params):
            row = dict(zip(_RECORD_COLUMNS, values, strict=True))
            yield ProvenancedRecord(
                event_id=row["event_id"],
                form=row["form"],
                subject=row["subject"],
                data=self._canonical_ids(row["form"], json.loads(row["data"])),
                created_at=row["created_at"],
                created_by=row["created_by"],
                site=row["site"] or "",
                device=row["device"],
                protocol_id=row["protocol_id"],
                protocol_version=row["protocol_version"],
                last_event=row["last_event"],
                last_changed_at=row["last_ts"] or row["created_at"],
                last_changed_by=row["last_user"],
                version=row["version"],
            )

    def records_naming_kit(self, kit: str) -> list[ProvenancedRecord]:
        """Records that name a kit in a `kit_id` field or a `kits` list, in log order.

        A dose names its kit; cold-chain receipts, handovers, thaws and
        dispositions (subject ``lot:<LOT>``) list the kits they moved. Kits
        are compared by their key (`wardcrf.ids`): a dose stored as typed
        (``kit-x1``) names ``KIT-X1``.
        """
        key = ids.key(kit)
        found = set()
        # Read where the records are, on either engine: the records holding a `kit_id` or a `kits` key at all
        # (SQL both engines run), their values compared in Python.
        for eid, data in self.data.execute(
            "SELECT event_id, data FROM records WHERE data LIKE '%\"kit_id\"%' OR data LIKE '%\"kits\"%'"
        ):
            values = json.loads(data)
            kits = values.get("kits")
            named = [values.get("kit_id"), *(kits if isinstance(kits, list) else [])]
            if any(isinstance(v, str) and ids.key(v) == key for v in named):
                found.add(str(eid))
        return [r for r in self.records() if r.event_id in found] if found else []

    def _canonical_ids(self, form: str, data: dict[str, Any]) -> dict[str, Any]:
        """Id fields (kit ids, lot numbers) as their canonical form, whatever version or laptop stored them.

        The export says `KIT-X1` where an older version stored the typed
        `kit-x1 `, so a sponsor matches doses to the cold chain's kits; the
        audit trail (amendments, events) keeps what was typed.
        """
        names = self._id_field_names.get(form)
        if names is None:
            names = self._id_field_names[form] = [f.name for f in self.form_fields(form) if f.id_kind]
        if not names:
            return data
        return {k: ids.key(v) if k in names and isinstance(v, str) else v for k, v in data.items()}

    def participants(self) -> list[str]:
        """Every participant id with at least one record, in order of first record."""
        rows = self.data.execute(
            "SELECT r.subject FROM records r JOIN events e ON e.id = r.event_id"
            " WHERE r.subject LIKE 'participant:%' GROUP BY r.subject ORDER BY min(e.pos)"
        )
        return [s[len(PARTICIPANT_PREFIX) :] for (s,) in rows]

    def participant_exists(self, pid: str) -> bool:
        return (
            self.data.one("SELECT 1 FROM events WHERE subject = ? LIMIT 1", (PARTICIPANT_PREFIX + pid,))
            is not None
        )

    # -- history and signatures --------------------------------------------------------

    def amendments(self, event_id: str | None = None) -> list[Amendment]:
        sql = "SELECT * FROM amendments"
        params: tuple[Any, ...] = ()
        if event_id:
            sql += " WHERE target_event = ?"
            params = (event_id,)
        rows = self.data.rows(sql + " ORDER BY ts, event_id, field", params)
        return [
            Amendment(
                r["event_id"],
                r["target_event"],
                r["field"],
                _loads(r["old_value"]),
                _loads(r["new_value"]),
                r["reason"],
                r["user_id"],
                r["ts"],
            )
            for r in rows
        ]

    def amendment_events(self, event_id: str) -> list[list[Amendment]]:
        """A record's amendments grouped per amendment event, in log order."""
        groups: dict[str, list[Amendment]] = {}
        for a in self.amendments(event_id):
            groups.setdefault(a.event_id, []).append(a)
        order = {
            eid: pos
            for eid, pos in self.data.execute("SELECT id, pos FROM events WHERE amends = ?", (event_id,))
        }
        return [groups[k] for k in sorted(groups, key=lambda k: order.get(k, 0))]

    def signatures(self, *, target: str | None = None, subject: str | None = None) -> list[Signature]:
        """Signatures with their current validity (content hash recomputed now), in log order.

        At a PostgreSQL hub, the wards' (the database) and the hub's own (its file) merged as received;
        a signature's content hash is computed in the log holding what it signs.
        """
        from .. import signatures as sigs

        where = ""
        params: tuple[Any, ...] = ()
        if target:
            where = " WHERE s.target_event = ?"
            params = (target,)
        elif subject:
            where = " WHERE s.subject = ? OR s.target_event = ?"
            params = (subject, subject)
        found: list[tuple[SqlStore, dict[str, Any]]] = []
        for db in reversed(self.logs()):  # the wards' first: one log's order when there is one
            sql = (
                f"SELECT s.*, {db.json_text('e.line', 'site')} AS site FROM signatures s"
                " JOIN events e ON e.id = s.event_id"
            )
            found += [(db, r) for r in db.rows(sql + where + " ORDER BY e.pos", params)]
        if self.wards is not None:
            order = self._arrivals([r["event_id"] for _db, r in found])
            never = ("~", 2, 0)
            found.sort(key=lambda x: order.get(x[1]["event_id"], never))
        out = []
        hashes: dict[str, str] = {}
        for db, r in found:
            t = r["target_event"]
            if t not in hashes:
                hashes[t] = ""
                for holder in dict.fromkeys([db, *self.logs()]):
                    try:
                        hashes[t] = sigs.content_hash(holder, t)
                        break
                    except Refused:
                        continue
            out.append(
                Signature(
                    r["event_id"],
                    t,
                    r["subject"],
                    r["meaning"],
                    r["user_id"],
                    r["full_name"],
                    r["signed_at"],
                    r["site"] or "",
                    hashes[t] == r["signed_hash"],
                )
            )
        return out

    @cached_property
    def users(self) -> dict[str, dict[str, Any]]:
        """Every user by name. At a PostgreSQL hub: the hub's own (its file) and the wards' directory (the
        database); a name in both is the one received first, as one log's projection keeps it."""
        rows = {r["username"]: r for r in self.store.rows("SELECT * FROM users ORDER BY username")}
        if self.wards is not None:
            theirs = {r["username"]: r for r in self.wards.rows("SELECT * FROM users ORDER BY username")}
            both = [u for u in rows if u in theirs]
            order = self._arrivals(
                [rows[u]["created_event"] for u in both] + [theirs[u]["created_event"] for u in both]
            )
            never = ("~", 2, 0)
            for u, r in theirs.items():
                if u not in rows or order.get(r["created_event"], never) < order.get(
                    rows[u]["created_event"], never
                ):
                    rows[u] = r
        return dict(sorted(rows.items()))

    def full_name(self, user: str | None) -> str:
        if not user:
            return ""
        u = self.users.get(user)
        return u["full_name"] if u else user


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def value_text(value: Any) -> str:
    """A stored value as one CSV/XML cell: the number of a unit value, codes joined by ';'."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Integral floats print as integers (2e8 -> 200000000) so tools read them as numbers.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, list):
        return ";".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def unit_of(value: Any, fd: Field | None) -> str:
    if isinstance(value, dict) and "value" in value:
        return str(value.get("unit") or "")
    return (fd.unit or "") if fd else ""


def number(value: Any) -> float | None:
    """The numeric value of a stored field, or None (missing, not evaluable, text)."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
