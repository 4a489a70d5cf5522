"""Records (form submissions) and their amendments.

Every form a person fills in (screening, consent, a dose, vitals, a
handover, ...) is one ``record.submitted`` event whose body carries the form
name and the field values. Corrections are ``record.amended`` events that
name the record, carry old and new value per field and a mandatory reason
(Annex 11 §9); the original stays in the log and in `amendments`.

The generic `records` projection holds each record's current values. Form
specific projections (doses, vitals, handovers, ...) register a `form_hook`
that is called with the record's current state after a submission and after
every amendment, so they never need to know about amendments themselves.
A projection that gains from seeing a synced bundle's (or a replay's) records
together registers a batch hook instead (`add_batch_hook`: the ward queue's
upkeep, the vitals and dose rows, the participants rows, the photo bindings),
called once per run with every record's state in log order.

Two devices amending one field concurrently: each field remembers the hybrid
logical clock of the value it shows, and an amendment only replaces a value
older than itself. Both amendments stay in the log; `conflicts` lists them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, cast

from . import canonical, text
from .canonical import dumps
from .errors import Refused, UsageError
from .eventlog import Event, bodies_owned, get
from .sqlstore import SqlStore, common_dialect, portable
from .store import Store

if TYPE_CHECKING:
    from .features import Registry
    from .site import Session


@dataclass(frozen=True)
class Record:
    """A record's current values, as the projection holds them."""

    event_id: str
    form: str
    subject: str | None
    data: dict[str, Any]
    created_at: str
    created_by: str | None
    last_event: str
    version: int
    data_json: str | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)
    """`data` as the projection stores it (its JSON text), where the state was read or written so: a hook
    can ask of the text what it would otherwise ask of every value (photo references: `photos.store`)."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Record:
        return cls(
            event_id=row["event_id"],
            form=row["form"],
            subject=row["subject"],
            data=json.loads(row["data"]),
            created_at=row["created_at"],
            created_by=row["created_by"],
            last_event=row["last_event"],
            version=row["version"],
            data_json=row["data"],
        )


FormHook = Callable[[Store, Record], None]
BatchHook = Callable[[Store, Sequence[Record]], None]
Hook = FormHook | BatchHook
_FORM_HOOKS: dict[str, list[Hook]] = {}
_RECORD_HOOKS: list[Hook] = []
_BATCH_TABLES: dict[Hook, frozenset[str]] = {}
"""Per hook that takes records in batches (`add_batch_hook`): every table it reads or writes."""
_FOR_FORM: dict[str, list[Hook]] = {}  # form -> its hooks then the record hooks (`hooks_for`)


def add_form_hook(fn: FormHook, *forms: str) -> None:
    """Add a projection for forms, called after submission and each amendment (`features`).

    Hooks must be idempotent upserts keyed by the record's event id.
    """
    _add(fn, forms)


def record_hook(fn: FormHook) -> FormHook:
    """Add a projection called for *every* form, after submission and each amendment.

    For cross-cutting projections that look at field values whatever the
    form (a batch hook is the cheaper kind: `add_batch_hook` with no form). Same
    contract as `form_hook`: deterministic, idempotent upserts keyed by the
    record's event id; runs after the form's own hooks.
    """
    _add(fn, ())
    return fn


def add_batch_hook(fn: BatchHook, *forms: str, tables: Iterable[str]) -> None:
    """Add a projection that takes records in batches: `fn(store, records)`, for `forms` (none: every form,
    after the forms' own hooks, as `record_hook`).

    While a synced bundle or a replay is projected (`SqlStore.batched_inserts`) the records' states are
    collected and `fn` is called once with all of them, in log order (a record amended in the same
    bundle comes twice: as submitted, then as amended), before any statement that may touch `tables`
    (every table `fn` reads or writes) and at the batch's end (`SqlStore.later_each`); outside a batch
    (`append`) it is called at once with the one record. So `fn` must give for a run of records what it
    gives for each of them in turn (the ward queue's upkeep: once per participant a bundle touched), and
    never refuse (the record it would refuse was projected a while ago: refuse in a form hook).
    """
    _BATCH_TABLES[fn] = frozenset(t.lower() for t in tables)
    _add(fn, forms)


def _add(fn: Hook, forms: tuple[str, ...]) -> None:
    for f in forms:
        hooks = _FORM_HOOKS.setdefault(f, [])
        if fn not in hooks:
            hooks.append(fn)
    if not forms and fn not in _RECORD_HOOKS:
        _RECORD_HOOKS.append(fn)
    _FOR_FORM.clear()
    _PLANS.clear()


def load(store: SqlStore, event_id: str) -> Record | None:
    rows = store.rows("SELECT * FROM records WHERE event_id = ?", (event_id,))
    return Record.from_row(rows[0]) if rows else None


def load_for_amendment(store: Store, event_id: str) -> Record:
    """The record an amendment corrects, or a refusal that says which event to name instead."""
    rec = load(store, event_id)
    if rec is not None:
        return rec
    event = get(store, event_id)
    if event is None:
        raise Refused(f"unknown event {event_id} (see `wardcrf log`)")
    if event.type == "record.amended" and event.amends:
        raise Refused(
            f"event {event_id} is an amendment of {event.amends}; amend the original record {event.amends}"
        )
    raise Refused(f"event {event_id} is a {event.type} event, not a form record; only records can be amended")


def for_subject(store: Store, subject: str, form: str | None = None) -> list[Record]:
    sql = "SELECT * FROM records WHERE subject = ?"
    params: list[Any] = [subject]
    if form:
        sql += " AND form = ?"
        params.append(form)
    return [Record.from_row(r) for r in store.rows(sql + " ORDER BY created_at, event_id", params)]


def submit(
    session: Session,
    form: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    """Append a validated record. Validation and permission are the caller's job.

    `extra` carries body keys beside the field values (e.g. soft-range
    overrides with their reasons), kept in the hashed event.
    """
    body: dict[str, Any] = {"form": form, "data": data}
    if extra:
        body.update(extra)
    return session.append(type="record.submitted", subject=subject, body=body, reason=reason).event


def amend(
    session: Session,
    event_id: str,
    changes: dict[str, Any],
    reason: str,
    *,
    extra: dict[str, Any] | None = None,
) -> Event:
    """Correct fields of a record: old and new value per field, with a reason."""
    if not reason or not reason.strip():
        raise UsageError("an amendment needs a reason (--reason): what was wrong and why it changes")
    text.check(reason.strip(), field="reason")
    rec = load_for_amendment(session.store, event_id)
    delta = {}
    for field, new in changes.items():
        old = rec.data.get(field)
        if dumps(old) != dumps(new):
            delta[field] = {"old": old, "new": new}
    if not delta:
        raise Refused("nothing to amend: every value given equals the current value")
    body: dict[str, Any] = {"form": rec.form, "changes": delta}
    if extra:
        body.update(extra)
    return session.append(
        type="record.amended", subject=rec.subject, body=body, reason=reason.strip(), amends=event_id
    ).event


def history(store: Store, event_id: str) -> list[dict[str, Any]]:
    """Every amendment of a record: field, old -> new, reason, who, when."""
    return store.rows(
        "SELECT event_id, field, old_value, new_value, reason, user_id, ts FROM amendments"
        " WHERE target_event = ? ORDER BY ts, event_id, field",
        (event_id,),
    )


def conflicts(store: SqlStore) -> list[dict[str, Any]]:
    """Pairs of amendments of the same field made on different devices, neither seeing the other.

    Either engine: a PostgreSQL hub's records are in its database (`sync.hub.conflicts`).
    """
    return store.rows(
        """
        SELECT a.target_event, a.field, a.event_id AS first_event, b.event_id AS second_event,
               a.new_value AS first_value, b.new_value AS second_value
        FROM amendments a JOIN amendments b
          ON a.target_event = b.target_event AND a.field = b.field AND a.event_id < b.event_id
        JOIN events ea ON ea.id = a.event_id JOIN events eb ON eb.id = b.event_id
        WHERE ea.device != eb.device
          AND (a.old_value = b.old_value OR (a.old_value IS NULL AND b.old_value IS NULL))
        ORDER BY a.target_event, a.field
        """
    )


def _run_hooks(store: SqlStore, event_id: str, rec: Record | None = None) -> None:
    """Run the form's hooks and the record hooks on the record's current state.

    `rec`, when the caller has just written the row, is that state (saves
    re-reading and re-parsing the row for every submission a hub ingests).
    """
    if rec is None:
        rec = load(store, event_id)
        if rec is None:
            return
        # After an amendment: the hooks index fields by name, and data they cannot
        # read (a time amended into a list) is refused here, not a crash inside a
        # hook. A submission's data was checked with its event (`eventbodies`).
        from .eventbodies import require_form_data

        require_form_data(event_id, rec.form, rec.data)
    plan = _plan(rec.form)
    if not isinstance(store, Store):
        # Another engine (a PostgreSQL hub) runs only hooks whose SQL it speaks (`common_dialect`):
        # `NotPortable` before any of them runs.
        for hook in hooks_for(rec.form):
            portable(hook)
    target = cast(Store, store)  # either engine, from here on (checked above)
    for each, batch, tables in plan:
        if each is not None:
            each(target, rec)
        elif not store.later_each(_RUN, tables, (rec, batch), functools.partial(_run_batches, target)):
            for hook in batch:
                hook(target, [rec])


_RUN = ("records.batch_hooks",)
"""The one key (`SqlStore.later_each`) a batch's records are put off under, whatever their forms' batch hooks:
one item per record and run of its hooks, instead of one per record and hook."""


def _run_batches(store: Store, items: list[tuple[Record, tuple[BatchHook, ...]]]) -> None:
    """Each batch hook called once with its records of the run, in log order; the hooks in the order the run
    first asked for them (as with a key per hook). They never refuse, and no two write one table (the
    participants rows are one hook for that, `workflow.participants`): which of two goes first gives the
    same rows."""
    by_hook: dict[BatchHook, list[Record]] = {}
    for rec, hooks in items:
        for hook in hooks:
            recs = by_hook.get(hook)
            if recs is None:
                by_hook[hook] = [rec]
            else:
                recs.append(rec)
    for hook, recs in by_hook.items():
        hook(store, recs)


Step = tuple[FormHook | None, tuple[BatchHook, ...], frozenset[str]]
_PLANS: dict[str, tuple[Step, ...]] = {}


def _plan(form: str) -> tuple[Step, ...]:
    """`hooks_for(form)` as steps, looked up once per form: a hook per record (run at once), or a run of
    consecutive batch hooks with every table they read or write (put off together, `_run_hooks`). A batch
    hook after a hook per record stays after it: the record hook's writes are what it may read."""
    plan = _PLANS.get(form)
    if plan is None:
        steps: list[Step] = []
        for hook in hooks_for(form):
            tables = _BATCH_TABLES.get(hook)
            if tables is None:
                steps.append((cast(FormHook, hook), (), frozenset()))
            elif steps and steps[-1][0] is None:
                _each, batch, before = steps[-1]
                steps[-1] = (None, (*batch, cast(BatchHook, hook)), before | tables)
            else:
                steps.append((None, (cast(BatchHook, hook),), tables))
        plan = _PLANS[form] = tuple(steps)
    return plan


def hooks_for(form: str) -> list[Hook]:
    """The hooks a record of `form` runs: the form's own, then the record hooks (`_run_hooks`)."""
    hooks = _FOR_FORM.get(form)
    if hooks is None:
        hooks = _FOR_FORM[form] = [*_FORM_HOOKS.get(form, []), *_RECORD_HOOKS]
    return hooks


def clock_json(fields: Iterable[str], hlc: str) -> str:
    """``dumps({field: hlc for field in fields})``, the new record's field clock, spelled without building
    the dict: the same bytes (sorted keys, each escaped as the canonical encoder escapes a string:
    tests/unit/test_batched_projections.py). The keys' part is spelled once per set of field names
    (`_clock_keys`: a form's records mostly share theirs), so a record costs one join."""
    keys = _clock_keys(tuple(fields))
    if not keys:
        return "{}"
    value = ":" + encode_basestring(hlc)
    return "{" + (value + ",").join(keys) + value + "}"


@functools.lru_cache(maxsize=512)
def _clock_keys(fields: tuple[str, ...]) -> tuple[str, ...]:
    """The field names of `clock_json`, sorted and each spelled as a JSON string."""
    return tuple(encode_basestring(k) for k in sorted(fields))


@common_dialect
def _submitted(store: Store, e: Event) -> None:
    data = e.body.get("data") or {}
    # A synced or replayed record's data is as parsed from its line, which msgspec was shown to spell
    # as the canonical encoder does (`Event.spelled_alike`); this projector is the record type's first.
    owned = bodies_owned()
    data_json = canonical.dumps_parsed(data) if owned and e.spelled_alike else dumps(data)
    store.insert(
        "INSERT INTO records (event_id, form, subject, data, field_hlc, created_at, created_by,"
        " last_event, last_hlc, version) VALUES (?,?,?,?,?,?,?,?,?,1)",
        (
            e.id,
            e.body["form"],
            e.subject,
            data_json,
            clock_json(data, e.hlc),
            e.ts,
            e.user,
            e.id,
            e.hlc,
        ),
    )
    # The state just written, exactly as `load` would read it back (the data
    # parsed from the stored JSON, so hooks never share the caller's dicts; a
    # replay's or a synced batch's events were parsed from their lines a moment
    # ago and are shared with no one (`bodies_owned`): not parsed a second time).
    rec = Record(
        event_id=e.id,
        form=e.body["form"],
        subject=e.subject,
        data=data if owned else json.loads(data_json),
        created_at=e.ts,
        created_by=e.user,
        last_event=e.id,
        version=1,
        data_json=data_json,
    )
    _run_hooks(store, e.id, rec)


@common_dialect
def _amended(store: Store, e: Event) -> None:
    row = store.one("SELECT data, field_hlc, last_hlc FROM records WHERE event_id = ?", (e.amends,))
    if row is None:
        raise Refused(f"amendment {e.id} names unknown record {e.amends}")
    data, field_hlc = json.loads(row[0]), json.loads(row[1])
    for field, change in e.body["changes"].items():
        store.execute(
            "INSERT INTO amendments (event_id, target_event, field, old_value, new_value, reason,"
            " user_id, ts) VALUES (?,?,?,?,?,?,?,?)",
            (
                e.id,
                e.amends,
                field,
                dumps(change.get("old")),
                dumps(change.get("new")),
                e.reason or "",
                e.user,
                e.ts,
            ),
        )
        # Later (by HLC) wins; an older concurrent amendment stays in the log only.
        if field_hlc.get(field, "") <= e.hlc:
            data[field] = change.get("new")
            field_hlc[field] = e.hlc
    # The later clock, compared here: code point order, as SQLite's max() compares text.
    store.execute(
        "UPDATE records SET data = ?, field_hlc = ?, last_event = ?, last_hlc = ?,"
        " version = version + 1 WHERE event_id = ?",
        (dumps(data), dumps(field_hlc), e.id, max(str(row[2]), e.hlc), e.amends),
    )
    _run_hooks(store, str(e.amends))


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_submitted, "record.submitted")
    registry.projector(_amended, "record.amended")
