"""Who may originate each event type: the authority table, checked where events enter.

A signed bundle proves which device wrote its events, not that the device
was entitled to write them. A ward laptop's key holder can put any line into
the laptop's chain and the export signs it. So every event type declares,
here, who may originate it:

- `Origin.SITE`: any device (a ward laptop or the hub) acting for its own
  site, the site in the event's envelope (accounts, protocol loads, backups);
- `Origin.WARD`: a ward laptop of the envelope's site (clinical records,
  signatures, photos, answers to the hub's queries);
- `Origin.HUB`: the coordinator's hub only (device registration and
  retirement, DSMG decisions and queries sent to sites, user changes, the
  hub's own flags on devices, randomization lists);

and which roles (through the `roles.py` actions) may have written it. The
table is data: `docs/security.md` prints it, `test_sync_authority` checks
that every type the code appends is in it.

Two places enforce it, the only two ways an event enters a log:
`eventlog.append` (this device, `check_append`) and sync import
(`sync.engine.accept`, `check_import`), before anything of the bundle is
applied. Import also checks what a type says about *other* sites: a ward
event may name only its own site's participants and records, and answer only
its own site's queries. Projectors take site and device from the event's
envelope (`Event.site`, `Event.device`), which the chain check ties to the
signing device, never from the body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from . import roles
from .errors import Refused
from .registration import require_installed
from .sqlstore import NotPortable, common_dialect, is_portable, portable

if TYPE_CHECKING:
    from .eventlog import Event
    from .sqlstore import SqlStore
    from .store import Store


class Origin(StrEnum):
    SITE = "site"
    WARD = "ward"
    HUB = "hub"


ORIGIN_TEXT = {
    Origin.SITE: "any device of the site (ward or hub), for its own site",
    Origin.WARD: "a ward laptop of the site",
    Origin.HUB: "the coordinator's hub only",
}


@dataclass(frozen=True)
class EventType:
    """One row of the authority table."""

    name: str
    origin: Origin
    actions: tuple[str, ...] = ()
    """`roles.py` actions: the event's role must be allowed at least one of them."""
    any_role: bool = False
    """Written by the system for whoever is signed in (a failed login, a lockout)."""
    keyless: bool = False
    """May carry no role: written with the site recovery key, not by a signed-in user."""
    what: str = ""

    @property
    def roles(self) -> frozenset[str]:
        return _roles_of(self)

    def who(self) -> str:
        """The table's 'who' column, as docs and refusals say it."""
        parts = []
        if self.any_role:
            parts.append("any signed-in role")
        elif self.actions:
            parts.append(", ".join(sorted(self.roles)) + f" ({', '.join(self.actions)})")
        if self.keyless:
            parts.append("or the site recovery key (no user)")
        return "; ".join(parts)


@cache
def _roles_of(t: EventType) -> frozenset[str]:
    """The roles an event type's actions allow (cached: a hub checks every event it imports)."""
    if t.any_role:
        return frozenset(roles.ROLES)
    out: set[str] = set()
    for action in t.actions:
        out |= roles.PERMISSIONS.get(action, frozenset())
    return frozenset(out)


# Actions that save a form record (`workflow` rules and cold chain's services).
_SUBMIT = (
    "record.submit",
    "consent.record",
    "participant.screen",
    "dose.record",
    "dsmg.decide",
    "coldchain.record",
    "coldchain.configure",
    "coldchain.disposition",
    "coldchain.prepare",
)
_AMEND = ("record.amend", "participant.screen", "dsmg.decide", "casebook.signoff")


def _governed(origin: Origin, actions: tuple[str, ...], notes: dict[str, str]) -> tuple[EventType, ...]:
    """Rows one authority governs: each event type in `notes` (name: what) with `origin` and `actions`."""
    return tuple(EventType(name, origin, actions, what=what) for name, what in notes.items())


_TABLE: tuple[EventType, ...] = (
    # -- a site's own accounts, protocol and administration (ward or hub) --------------
    EventType("site.initialized", Origin.SITE, ("user.manage",), what="a data directory is created"),
    EventType("user.added", Origin.SITE, ("user.manage",), what="an account of this site"),
    EventType("user.deactivated", Origin.SITE, ("user.manage",)),
    EventType("user.unlocked", Origin.SITE, ("user.manage",), keyless=True),
    EventType("user.password_changed", Origin.SITE, ("user.passwd.self", "user.manage")),
    EventType("user.password_reset", Origin.SITE, keyless=True, what="with the recovery key"),
    EventType("user.language_set", Origin.SITE, any_role=True),
    EventType("user.locked", Origin.SITE, any_role=True, what="five failed sign-ins in a row"),
    EventType("auth.login_failed", Origin.SITE, any_role=True),
    EventType("auth.login_refused", Origin.SITE, any_role=True),
    EventType("protocol.loaded", Origin.SITE, ("protocol.load",)),
    EventType(
        "protocol.reencoded", Origin.SITE, ("protocol.load",), what="a format-2 file of a loaded version"
    ),
    EventType(
        "coldchain.readings_judged",
        Origin.SITE,
        ("protocol.load",),
        what="a unit's readings judged against the products a newly loaded protocol version adds",
    ),
    EventType("db.backup_made", Origin.SITE, ("db.backup",)),
    EventType("db.restored", Origin.SITE, ("db.restore",), keyless=True),
    EventType("db.rebuilt", Origin.SITE, ("db.rebuild",)),
    EventType("db.raw_key_shown", Origin.SITE, ("db.raw_key",)),
    EventType("export.plaintext", Origin.SITE, ("export.plaintext",)),
    EventType(
        "db.rollback_accepted", Origin.SITE, ("db.accept_rollback",), what="an older database, with a reason"
    ),
    EventType(
        "db.behind_accepted",
        Origin.SITE,
        ("db.accept_rollback",),
        what="a database behind this laptop's events at the hub or in a newer copy, with a reason",
    ),
    EventType(
        "device.moved",
        Origin.SITE,
        ("device.accept_move",),
        what="this site's data now on another computer, with a reason",
    ),
    EventType(
        "device.scanner_set",
        Origin.SITE,
        ("device.configure",),
        what="how this laptop's barcode scanner ends a code (Enter or a quiet gap)",
    ),
    EventType("db.rollback_counter_reset", Origin.SITE, any_role=True, what="the counter file was missing"),
    EventType("db.triggers_restored", Origin.SITE, ("audit.verify",), what="found by `audit verify`"),
    EventType(
        "device.signing_key_sealed", Origin.SITE, ("device.sign",), what="an older site's clear secret"
    ),
    EventType("recovery.key_checked", Origin.SITE, keyless=True, what="the recovery key was tried"),
    EventType("draft.purged", Origin.SITE, ("draft.manage",), what="owner and count, never content"),
    EventType(
        "coding.dictionary_loaded", Origin.SITE, ("coding.dictionary",), what="licensed MedDRA/WHODrug files"
    ),
    EventType("coding.coded", Origin.SITE, ("coding.code",), what="a verbatim term given its codes"),
    EventType("sdv.verified", Origin.SITE, ("sdv.mark",), what='a monitor\'s e-signature "verified"'),
    EventType(
        "audit.reviewed", Origin.SITE, ("audit.review",), what="a periodic audit-trail review, then signed"
    ),
    # -- clinical and cold-chain records: a ward laptop of the site --------------------
    EventType("record.submitted", Origin.WARD, _SUBMIT, what="a form record"),
    EventType("record.amended", Origin.WARD, _AMEND, what="a correction of a record of the same site"),
    EventType("signature.applied", Origin.WARD, ("signature.sign",), what="of a record of the same site"),
    EventType("photo.imported", Origin.WARD, ("photo.import",)),
    EventType(
        "protocol.applied",
        Origin.WARD,
        ("protocol.apply",),
        what="a participant moved to a newer loaded protocol version, with a reason",
    ),
    EventType("coldchain.logger_imported", Origin.WARD, ("coldchain.record",)),
    EventType("query.answered", Origin.WARD, ("record.comment",), what="of a query raised to the same site"),
    EventType(
        "query.opened",
        Origin.WARD,
        tuple(dict.fromkeys(_SUBMIT + _AMEND)),
        what="a protocol rule of severity query on a record of the same site, with its save",
    ),
    EventType("sync.hub_set", Origin.WARD, ("sync.configure",), what="the hub this laptop trusts"),
    EventType("sync.recipient_added", Origin.WARD, ("sync.configure",), what="who can read the bundles"),
    *_governed(
        Origin.WARD,
        ("randomization.allocate",),
        {
            "randomization.allocated": "the next entry of the participant's stratum (arm, or a kit number if blinded)",
            "randomization.stratum_exhausted": "a stratum's list ran out; tells the hub",
        },
    ),
    *_governed(
        Origin.WARD,
        ("randomization.unblind",),
        {
            "randomization.unblinding_key": "the laptop's unblinding recipient, whose secret only unblinding roles' key slots carry",
            "randomization.unblinded": "emergency unblinding of one participant, reason and e-signature",
        },
    ),
    # -- the coordinator's hub only ------------------------------------------------------
    EventType("hub.device_registered", Origin.HUB, ("hub.manage",), what="trust a device's keys"),
    EventType("hub.device_retired", Origin.HUB, ("hub.manage",)),
    EventType("hub.user_change", Origin.HUB, ("user.manage",), what="deactivate/lock/unlock a ward account"),
    EventType("dsmg.decision", Origin.HUB, ("dsmg.decide",), what="sent to a site"),
    EventType("query.raised", Origin.HUB, ("query.raise",)),
    EventType("query.closed", Origin.HUB, ("query.raise",)),
    EventType("sync.fork_detected", Origin.HUB, ("hub.manage",), what="the hub flags a device"),
    EventType("sync.bundle_held", Origin.HUB, ("hub.manage",), what="the hub flags a device"),
    EventType("sync.bundle_refused", Origin.HUB, ("hub.manage",), what="the hub's record of a refusal"),
    EventType(
        "randomization.list_issued",
        Origin.HUB,
        ("randomization.make",),
        what="a sealed, signed allocation list for one ward laptop; its SHA-256",
    ),
    *_governed(
        Origin.HUB,
        ("randomization.export",),
        {
            "randomization.trial_unblinded": "a blinded trial unblinded at the hub, with a reason",
            "randomization.exported": "the statistician's unblinded export: file, rows, SHA-256",
        },
    ),
)

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _TABLE}


def declare(event_type: EventType, body: type[Any]) -> EventType:
    """Add a type to the table with its body schema (a msgspec struct, `eventbodies`).

    For a feature's own events and tests' scratch types. Declaring a name
    twice with a different row is refused: authority changes by editing
    the table, never by a later import overriding it.
    """
    from . import eventbodies

    have = EVENT_TYPES.get(event_type.name)
    if have is not None and (have != event_type or eventbodies.BODIES.get(event_type.name) is not body):
        raise ValueError(f"event type {event_type.name} is already declared differently")
    EVENT_TYPES[event_type.name] = event_type
    eventbodies.BODIES[event_type.name] = body
    return event_type


def get(name: str) -> EventType | None:
    return EVENT_TYPES.get(name)


def _origin_allows(origin: Origin, kind: str) -> bool:
    return origin is Origin.SITE or origin.value == kind


def _who_may(t: EventType) -> str:
    return ORIGIN_TEXT[t.origin] + (f", {t.who()}" if t.who() else "")


def check_append(kind: str, role: str | None, type_: str) -> EventType:
    """May this device (kind 'ward' or 'hub'), with this role, originate `type_`? Raises `Refused`."""
    t = EVENT_TYPES.get(type_)
    if t is None:
        raise Refused(f"unknown event type {type_!r}: not in the authority table (wardcrf.authority)")
    if not _origin_allows(t.origin, kind):
        raise Refused(f"a {kind} may not originate {type_} (allowed: {_who_may(t)})")
    _check_role(t, role, f"role {role} may not originate {type_}")
    return t


def _check_role(t: EventType, role: str | None, prefix: str) -> None:
    if role is None:
        if not t.keyless:
            raise Refused(f"{prefix.replace('role None', 'an event without a role')} (allowed: {t.who()})")
        return
    if role not in t.roles:
        raise Refused(f"{prefix} (allowed: {t.who() or 'no role'})")


# -- import ------------------------------------------------------------------------------


def check_import(store: SqlStore, events: Iterable[Event], kind: str, what: str = "bundle") -> None:
    """Refuse, naming the first offending event, a run of events its device may not originate.

    Each event's envelope and body were checked against their schemas with
    the chain (`sync.bundle.check_chain`, `eventbodies`).

    `kind` is the signing device's kind in the importer's registry ('ward' or
    'hub'); the chain check has already tied every event's envelope (device,
    site) to that device. Nothing is written here.
    """
    require_installed()  # the features declare their forms' actions
    sites = _DeviceSites(store)
    # Versions this run loads before its records (a device's first bundle carries its site's first
    # `protocol.loaded`, then records under it): checked under them, not under the names' defaults.
    arriving: dict[tuple[str, str], str] = {}
    # A form's actions under one version, asked once per run, not once per record (`_actions_of`).
    actions: ActionsMemo = {}
    # Nothing is written here: the hooks' reads (a record's protocol version) are remembered for the
    # run (`SqlStore.memoized`), read once per bundle, not once per record.
    with store.batched_inserts():
        _check_each(store, events, kind, what, sites, arriving, actions)


def _check_each(
    store: SqlStore,
    events: Iterable[Event],
    kind: str,
    what: str,
    sites: _DeviceSites,
    arriving: dict[tuple[str, str], str],
    actions: ActionsMemo,
) -> None:
    # A record's form and its protocol version are projections, read in the common dialect (a
    # PostgreSQL hub holds them too).
    check_record = portable(_check_record)
    # (type, role) pairs this run has seen pass the type's origin and role checks, which read nothing
    # else of the event (`kind` is the run's): asked once per pair, not once per event. Only a pass
    # is remembered; an event that fails is refused on the spot, in the same words.
    passed: set[tuple[str, str | None]] = set()
    for e in events:
        t = EVENT_TYPES.get(e.type)
        if t is None:
            raise Refused(
                f"{what}: event {e.id} has type {e.type!r}, unknown to this importer; refused, nothing applied"
            )
        seen = (e.type, e.role) in passed
        if not seen and not _origin_allows(t.origin, kind):
            raise Refused(
                f"{what}: event {e.id} is a {e.type}, which a {kind} device may not originate "
                f"(allowed: {ORIGIN_TEXT[t.origin]}); refused, nothing applied"
            )
        try:
            if not seen:
                _check_role(t, e.role, f"role {e.role} may not originate {e.type}")
                passed.add((e.type, e.role))
            check_record(store, e, arriving, actions)
        except Refused as exc:
            raise Refused(f"{what}: event {e.id}: {exc}; refused, nothing applied") from None
        # The hub speaks for every site (it already sends HUB-only events about any of them, and
        # its monitors verify any site's records, `sdv.verified`); a ward speaks only for its own
        # site: its events naming another site's participants or records are refused. Checking
        # the hub's events too stopped every ward from applying the hub's chain (one chain for all
        # wards) once a hub monitor had verified one record.
        if e.type == "protocol.loaded" and isinstance(e.body.get("source"), str):
            arriving[(str(e.body.get("protocol_id")), str(e.body.get("version")))] = e.body["source"]
        if t.origin is not Origin.HUB and kind == "ward":
            problem = _about_other_site(e, sites)
            if problem:
                raise Refused(
                    f"{what}: event {e.id} ({e.type}) {problem}, not of its own site {e.site}; "
                    "refused, nothing applied"
                )


_FORM_ACTIONS: dict[str, tuple[str, str]] = {}
DEFAULT_ACTIONS = ("record.submit", "record.amend")


def form_actions(form: str, *, submit: str, amend: str = "record.amend") -> None:
    """Declare which `roles.py` actions may submit and amend records of `form`.

    The services check them before they write (`session.require`); sync
    import checks them again on records that arrive from another device
    (`check_import`), where no service ran. A form nobody declared
    takes `DEFAULT_ACTIONS` (a clinical form of the protocol).
    """
    _FORM_ACTIONS[form] = (submit, amend)


def actions_for(form: str) -> tuple[str, str]:
    """(submit action, amend action) of a form, by its name (format 1's forms and the features')."""
    return _FORM_ACTIONS.get(form, DEFAULT_ACTIONS)


Arriving = Mapping[tuple[str, str], str]
"""(protocol id, version) -> source of the versions a run of imported events loads before its records."""

ActionsMemo = dict[tuple[str, tuple[str, str] | None, str | None], tuple[str, str]]
"""One run's answers of `_actions_of`: (form, (protocol id, version) or None, arriving source) -> actions."""

FormActionsOf = Callable[["Store", "Event", str, Arriving], "tuple[str, str] | None"]
"""`fn(store, event, form, arriving)`: the (submit, amend) actions of `form` under the protocol version
the record was captured under (`event.protocol`: loaded here, or loaded earlier in the same run of
imported events, `arriving`), or None when that version does not say. The answer may depend on the
form, the version the record names (its `id` and `version`), what `arriving` holds under that version,
and the store, nothing else of the event: `check_import` asks once per (form, version, arriving source)
in a run, in which nothing is written."""
_FORM_ACTIONS_OF: list[FormActionsOf] = []


def form_actions_of(fn: FormActionsOf) -> None:
    """Let `fn` decide a form's actions from the record's protocol version before the names do.

    A format-2 version names its own forms (an administration form `infusion`, a DSMG
    form `dsmg_decision`): the workflow answers with what its services require of them
    (`workflow.engine_rules.rule_for`), so the hub refuses what the ward would have.
    """
    if fn not in _FORM_ACTIONS_OF:
        _FORM_ACTIONS_OF.append(fn)


def _actions_of(
    store: Store,
    e: Event,
    form: str,
    arriving: Arriving,
    memo: ActionsMemo | None = None,
) -> tuple[str, str]:
    """The (submit, amend) actions of a record's form: the hooks' (`form_actions_of`), else the names'.

    `memo`, one run's (`check_import`): the answer under the same form, version and arriving source,
    which is the same answer (`FormActionsOf`): a bundle's thousands of records of a few forms under
    one version ask their version's model a few times, not once each (on PostgreSQL, not a round
    trip each)."""
    if memo is None:
        return _ask_actions(store, e, form, arriving)
    ref = e.protocol
    version = (str(ref.get("id", "")), str(ref.get("version", ""))) if ref else None
    key = (form, version, arriving.get(version) if version is not None else None)
    got = memo.get(key)
    if got is None:
        got = memo[key] = _ask_actions(store, e, form, arriving)
    return got


def _ask_actions(store: Store, e: Event, form: str, arriving: Arriving) -> tuple[str, str]:
    for fn in _FORM_ACTIONS_OF:
        if not is_portable(fn) and not store.holds_projections:
            raise NotPortable(f"{getattr(fn, '__qualname__', fn)!s} is not declared common_dialect")
        got = fn(store, e, form, arriving)
        if got is not None:
            return got
    return actions_for(form)


def _record_form(store: Store, e: Event) -> str | None:
    """The form of a record event: an amendment's is the record's own, not what its body claims."""
    form = e.body.get("form")
    if e.type == "record.amended" and e.amends:
        held = store.scalar("SELECT form FROM records WHERE event_id = ?", (e.amends,))
        form = held if held is not None else form
    return form if isinstance(form, str) else None  # not text: the schema refuses it


_RECORD_TYPES = ("record.submitted", "record.amended")


@common_dialect
def _check_record(
    store: Store,
    e: Event,
    arriving: Arriving,
    memo: ActionsMemo | None = None,
) -> None:
    """A record's role for its form (`_check_form_role`), then its values (`_check_values`): its form
    read once for both (an amendment's is a read of `records`; on PostgreSQL a round trip)."""
    if e.type not in _RECORD_TYPES:
        return
    form = _record_form(store, e)
    if form is None:
        return
    if e.role is not None:
        _check_form_role(store, e, e.role, form, arriving, memo)
    _check_values(store, e, form, arriving)


def _check_form_role(
    store: Store, e: Event, role: str, form: str, arriving: Arriving, memo: ActionsMemo | None
) -> None:
    """A record's role (`e.role`) must be one its form allows (`form_actions`), as the services require."""
    submit, amend = _actions_of(store, e, form, arriving, memo)
    action = submit if e.type == "record.submitted" else amend
    if not roles.allowed(role, action):
        verb = "submit" if e.type == "record.submitted" else "amend"
        raise Refused(
            f"role {role} may not {verb} {form[:60]!r} records (allowed: "
            f"{', '.join(sorted(roles.PERMISSIONS.get(action, frozenset())))} ({action}))"
        )


RecordValuesCheck = Callable[["Store", "Event", str, Arriving], "str | None"]
"""`fn(store, event, form, arriving)`: what is wrong with the values a record event carries for `form`
under the version it was captured under (`record_values.problem`), or None."""
_RECORD_VALUES: list[RecordValuesCheck] = []


def record_values_check(fn: RecordValuesCheck) -> None:
    """Let `fn` refuse an imported record whose values are not its form's stored representation.

    The services store what `forms.check` returns; a record arriving in a bundle was stored
    elsewhere, so the workflow, which knows the record's version, checks it here, before any
    projector reads it (`wardcrf/record_values.py` says why)."""
    if fn not in _RECORD_VALUES:
        _RECORD_VALUES.append(fn)


def _check_values(store: Store, e: Event, form: str, arriving: Arriving) -> None:
    for fn in _RECORD_VALUES:
        if not is_portable(fn) and not store.holds_projections:
            raise NotPortable(f"{getattr(fn, '__qualname__', fn)!s} is not declared common_dialect")
        found = fn(store, e, form, arriving)
        if found is not None:
            raise Refused(found)


class _DeviceSites:
    """device -> site, as the importer's registry knows them (cached for one bundle)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._cache: dict[str, str | None] = {}

    def site_of_event(self, event_id: str) -> str | None:
        device = event_id.rsplit("-", 1)[0]
        if device not in self._cache:
            row = self.store.one("SELECT site, device FROM site WHERE id = 1")
            if row is not None and row[1] == device:
                self._cache[device] = str(row[0])
            else:
                self._cache[device] = self.store.scalar(
                    "SELECT site FROM sync_devices WHERE device = ?", (device,)
                )
        return self._cache[device]

    def query_site(self, query_id: str) -> str | None:
        row = self.store.one("SELECT site FROM sync_queries WHERE query_id = ?", (query_id,))
        return str(row[0]) if row else None


def _subject_site(subject: str | None) -> tuple[str, str] | None:
    """(what, site) a subject names a site by, if it does."""
    if not subject:
        return None
    kind, _, rest = subject.partition(":")
    if kind == "participant":
        return f"is about participant {rest}", rest.rsplit("-", 1)[0] if "-" in rest else ""
    if kind == "site":
        return f"is about site {rest}", rest
    return None


Reference = Callable[["Event", _DeviceSites], "tuple[str, str | None] | None"]


def _amended(e: Event, sites: _DeviceSites) -> tuple[str, str | None] | None:
    return (f"corrects record {e.amends}", sites.site_of_event(e.amends)) if e.amends else None


def _signed(e: Event, sites: _DeviceSites) -> tuple[str, str | None] | None:
    target = e.body.get("target")
    return (f"signs record {target}", sites.site_of_event(target)) if isinstance(target, str) else None


def _verified(e: Event, sites: _DeviceSites) -> tuple[str, str | None] | None:
    target = e.body.get("target")
    return (f"verifies record {target}", sites.site_of_event(target)) if isinstance(target, str) else None


def _opened(e: Event, sites: _DeviceSites) -> tuple[str, str | None] | None:
    target = e.body.get("target_event")
    return (
        (f"opens a query on record {target}", sites.site_of_event(target))
        if isinstance(target, str)
        else None
    )


def _answered(e: Event, sites: _DeviceSites) -> tuple[str, str | None] | None:
    query = e.body.get("query")
    return (f"answers query {query}", sites.query_site(query)) if isinstance(query, str) else None


# What a ward event refers to that belongs to a site; an unknown target is the
# projector's to refuse (it names it), a known one must be of the event's site.
_REFERENCES: dict[str, Reference] = {
    "record.amended": _amended,
    "signature.applied": _signed,
    "sdv.verified": _verified,
    "query.answered": _answered,
    "query.opened": _opened,
}


def _about_other_site(e: Event, sites: _DeviceSites) -> str | None:
    subject = _subject_site(e.subject)
    if subject is not None and subject[1] != e.site:
        return subject[0]
    ref = _REFERENCES.get(e.type)
    if ref is not None:
        found = ref(e, sites)
        if found is not None and found[1] is not None and found[1] != e.site:
            return f"{found[0]} of site {found[1]}"
    return None


def markdown_table(leave_out: Iterable[str] = ()) -> str:
    """The authority table as docs/security.md prints it (a test keeps the two equal)."""
    head = "| event type | who may originate it | roles (roles.py actions) | note |\n|---|---|---|---|\n"
    skip = set(leave_out)
    rows = sorted(
        (t for t in EVENT_TYPES.values() if t.name not in skip),
        key=lambda t: (list(Origin).index(t.origin), t.name),
    )
    return head + "".join(
        f"| `{t.name}` | {ORIGIN_TEXT[t.origin]} | {t.who() or '—'} | {t.what} |\n" for t in rows
    )
