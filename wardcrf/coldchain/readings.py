"""The readings index (`cc_readings`), re-derived from the logger files kept as evidence.

On the ward, `services.import_logger` parses a unit's logger file, keeps the
file in `cc_evidence` and indexes its readings in `cc_readings` in the same
transaction as the ``coldchain.logger_imported`` event. The index is not a
projection of the log (the readings are in the file, not in the event), so
anywhere else the same rows come from parsing the same bytes again:

- a hub (or a replacement laptop) that applies a bundle: the bundle carries
  the file as ``evidence/<sha256>.<ext>``; `reindex_events` runs as an
  after-ingest hook inside the bundle's transaction;
- `db rebuild` / `db rebuild --check`: `reindex_all` replays every import in
  log order (a registered derived index of `projections`).

Parsing is deterministic given the bytes, the layout and the zone, and the
event records both (``format``; ``zone``, the zone the ward actually used:
the unit's, or the one the file states). Rows are inserted in log order with
the same rule as the ward, so the first file that supplied a reading keeps
it, exactly as on the ward; where two laptops' files disagree (which a ward
refuses at import, but two laptops cannot see each other's files) the other
value is listed in `cc_reading_conflicts`, never dropped unseen. Each re-parse is checked against
the summary the ward recorded (count, first, last, min, max): a machine
whose time-zone rules differ from the ward's would shift local times, and
that is refused, never indexed silently.

`reindex_events` and what it calls are declared `common_dialect`: a
PostgreSQL hub indexes the readings too (docs/hub-postgres.md); `store` is
then that database, which keeps the logger files beside them (`cc_evidence`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Refused, VerificationFailed
from ..eventlog import Event, iter_events
from ..sqlstore import SqlStore, common_dialect
from ..store import Store
from . import evidence, loggers
from .loggers import LoggerLog, iso_z

if TYPE_CHECKING:
    from ..features import Registry

EVENT_LOGGER = "coldchain.logger_imported"


def parse_again(store: SqlStore, event: Event) -> LoggerLog:
    """The readings of the file a logger-import event cites, parsed as the ward parsed them."""
    b = event.body
    try:
        raw = evidence.read(store, b["sha256"])
        log = loggers.parse(raw, b["zone"], fmt=b["format"])
    except (VerificationFailed, loggers.LoggerFileError) as exc:
        raise Refused(f"logger import {event.id}: {exc}; readings not indexed") from None
    _same_as_recorded(event, log)
    return log


def _same_as_recorded(event: Event, log: LoggerLog) -> None:
    s = event.body["summary"]
    got = {
        "readings": len(log.times),
        "first": iso_z(log.times[0]),
        "last": iso_z(log.times[-1]),
        "min_c": min(log.temps),
        "max_c": max(log.temps),
    }
    for key, value in got.items():
        if s.get(key) != value:
            raise Refused(
                f"logger import {event.id}: the file parsed here gives {key} {value}, the ward recorded "
                f"{s.get(key)} (different time-zone rules?); readings not indexed, nothing applied"
            )


def index_event(target: SqlStore, event: Event, source: SqlStore | None = None) -> int:
    """Index one import's readings into `target` (file read from `source`); returns rows added.

    A reading the unit already has from another file keeps that file's value;
    a different value is listed in `cc_reading_conflicts` (a ward refuses such
    a file at import; two laptops' files meet only at the hub or on a restored
    laptop).
    """
    log = parse_again(source or target, event)
    b = event.body
    unit, digest = b["unit_id"], b["sha256"]
    held = {
        t: (v, sha)
        for t, v, sha in target.execute(
            "SELECT t, temp_c, sha256 FROM cc_readings WHERE unit_id = ? AND t BETWEEN ? AND ?",
            (unit, log.times[0], log.times[-1]),
        )
    }
    fresh: list[tuple[str, int, float, str]] = []
    disagree: list[tuple[str, int, str, float, str, float]] = []
    for t, v in zip(log.times, log.temps, strict=True):
        kept = held.get(t)
        if kept is None:
            fresh.append((unit, t, v, digest))
        elif kept[0] != v and kept[1] != digest:
            disagree.append((unit, t, digest, v, kept[1], kept[0]))
    if fresh:
        target.executemany("INSERT INTO cc_readings (unit_id, t, temp_c, sha256) VALUES (?,?,?,?)", fresh)
    if disagree:
        target.executemany(
            "INSERT INTO cc_reading_conflicts (unit_id, t, sha256, temp_c, kept_sha256, kept_temp_c)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (unit_id, t, sha256) DO NOTHING",
            disagree,
        )
    return len(fresh)


@common_dialect
def reindex_events(store: SqlStore, events: Sequence[Event]) -> None:
    """After-ingest hook: index the readings of every logger import a bundle brought."""
    for event in events:
        if event.type == EVENT_LOGGER:
            index_event(store, event)


@common_dialect
def reindex_all(target: Store, source: Store) -> int:
    """Re-derive `target`'s readings from every logger import in `source`'s log, in log order (both
    engines: `db rebuild --check` at a PostgreSQL hub derives them into its copies, `sync.pgcheck`)."""
    target.execute("DELETE FROM cc_readings")
    target.execute("DELETE FROM cc_reading_conflicts")
    return sum(index_event(target, e, source) for e in _imports(source))


def conflicts(store: SqlStore) -> list[dict[str, Any]]:
    """Readings two logger files disagree on, per unit: (unit, time, kept value and file, other)."""
    return store.rows(
        "SELECT unit_id, t, kept_temp_c, kept_sha256, temp_c, sha256 FROM cc_reading_conflicts"
        " ORDER BY unit_id, t, sha256"
    )


def _imports(store: Store) -> Iterable[Event]:
    return iter_events(store, "type = ?", (EVENT_LOGGER,))


def readings_of(store: SqlStore, digest: str) -> list[dict[str, Any]]:
    """The indexed readings a file supplied (tests and reports compare ward and hub with it)."""
    return store.rows(
        "SELECT unit_id, t, temp_c FROM cc_readings WHERE sha256 = ? ORDER BY unit_id, t", (digest,)
    )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.after_ingest(reindex_events, EVENT_LOGGER)  # it reads nothing else
    registry.derived_index(reindex_all, "cc_readings", "cc_reading_conflicts")
