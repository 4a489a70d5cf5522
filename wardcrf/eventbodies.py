"""The shape of every event, checked before any projector sees one from outside.

A bundle's events passed their signatures and chain, so they are exactly
what the device wrote; not necessarily what a projector can read. A body
without `device`, a string where a number goes, a list where an object goes
once stopped the hub with a traceback (issue 15, finding 3). So every event
type in the authority table (`wardcrf.authority`) has a schema here, keyed
by the same name, for the envelope and the body; record data of the forms
whose projections index fields has one too (`FORM_DATA`). An import validates
every event of a bundle against them before anything is applied, and a
failure refuses that bundle alone, naming the event, the field and what was
expected.

The schemas are msgspec structs: typed, so a reader (and mypy) sees what a
projector may rely on, and fast (a hub validates a million events). They
list what the code reads; unknown keys are allowed, so an older hub reads a
newer ward's events as long as what it reads is there. Limits on sizes keep
one event from holding megabytes where a word goes. This module is imported
only when something is validated, off the TUI's start-up path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from . import roles, scanner
from .errors import Refused

# -- building blocks -------------------------------------------------------------------

Hex64 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
"""A short identifier or label: a user name, a site, a form, a unit id."""
Text = Annotated[str, Meta(max_length=20_000)]
"""Free text a person typed (a question, an answer, a reason)."""
EventId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}-[0-9]{1,12}$")]
Count = Annotated[int, Meta(ge=0, le=2**53)]
Role = Annotated[str, Meta(pattern="^(" + "|".join(roles.ROLES) + ")$")]
"""One of `roles.ROLES` (the one owner of the role names)."""
Instant = datetime
"""An RFC 3339 time with its offset, as the code writes them."""
Number = int | float


class Measured(Struct):
    """A stored measurement: `{"value": 37.2, "unit": "C"}`."""

    value: Number | None
    unit: Name | None = None


Quantity = Number | Measured | None
Scalar = str | Number | bool | None


class _Body(Struct, forbid_unknown_fields=False, kw_only=True):
    """Base of every body schema: unknown keys are allowed (newer writers)."""


# -- the envelope ------------------------------------------------------------------------


class Envelope(Struct, forbid_unknown_fields=True):
    """Every key of an event line (`eventlog.EVENT_KEYS` and `prev`), typed.

    `prev` (equal to the previous line's hash), `id` (equal to device-seq) and
    `type` (in the authority table, with a body schema) are checked exactly
    elsewhere, so here they need no pattern: a hub checks a million of these.
    """

    prev: Annotated[str, Meta(max_length=64)]
    amends: EventId | None
    body: Any  # an object or null: checked by `check_envelope` (no copy) and by its type's schema
    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    hlc: Annotated[str, Meta(pattern=r"^[0-9]{15}\.[0-9]{5}$")]
    id: Annotated[str, Meta(max_length=80)]
    protocol: dict[str, Annotated[str, Meta(max_length=200)]] | None
    reason: Text | None
    role: Role | None
    seq: Annotated[int, Meta(ge=1, le=2**53)]
    site: Name
    subject: Annotated[str, Meta(max_length=300)] | None
    ts: Instant
    type: Annotated[str, Meta(max_length=100)]
    tz: Annotated[str, Meta(pattern=r"^[+-][0-9]{2}:[0-9]{2}$")]
    user: Name | None
    zone: Annotated[str, Meta(min_length=1, max_length=64)]


# -- bodies, by event type -----------------------------------------------------------------


class SiteInitialized(_Body):
    site: Name
    device: Name
    device_name: Name
    kind: Literal["ward", "hub"]
    zone: Name


class UserAdded(_Body):
    username: Name
    full_name: Annotated[str, Meta(max_length=500)]
    role: Role


class UserNamed(_Body):
    username: Name


class UserLocked(_Body):
    username: Name
    failures: Count | None = None


class PasswordChanged(_Body):
    username: Name
    by_admin: bool | None = None


class PasswordReset(_Body):
    username: Name
    via: Name | None = None


class LanguageSet(_Body):
    username: Name
    language: Annotated[str, Meta(pattern=r"^[a-z]{2}(-[A-Za-z]{2,8})?$")]  # a protocol's declared code


class LoginFailed(_Body):
    username: Name
    at: Instant | None = None


class LoginRefused(_Body):
    username: Name
    at: Instant | None = None
    why: Name | None = None


class ProtocolLoaded(_Body):
    protocol_id: Name
    version: Name
    sha256: Hex64
    source: Annotated[str, Meta(max_length=4 * 1024 * 1024)]
    filename: Annotated[str, Meta(max_length=300)] | None = None


class ProtocolReencoded(_Body):
    protocol_id: Name
    version: Name
    sha256: Hex64
    reencodes: Hex64
    source: Annotated[str, Meta(max_length=4 * 1024 * 1024)]
    filename: Annotated[str, Meta(max_length=300)] | None = None


class ProtocolApplied(_Body):
    participant: Name
    protocol_id: Name
    from_version: Name
    to_version: Name


class BackupMade(_Body):
    file: Annotated[str, Meta(max_length=1000)] | None = None
    sha256: Hex64 | None = None
    events: Count | None = None


class Restored(_Body):
    file: Annotated[str, Meta(max_length=1000)] | None = None
    events: Count | None = None
    at: Instant | None = None
    replaced: Annotated[str, Meta(max_length=4000)] | None = None


class Rebuilt(_Body):
    events: Count | None = None


class Empty(_Body):
    pass


class PlaintextExport(_Body):
    file: Annotated[str, Meta(max_length=1000)]
    sha256: Hex64
    tables: dict[Name, Count] = {}
    excluded: list[Name] = []


class RecordSubmitted(_Body):
    form: Name
    data: dict[Annotated[str, Meta(max_length=200)], Any]
    creates_participant: bool | None = None


class Change(Struct):
    old: Any = None
    new: Any = None


class RecordAmended(_Body):
    form: Name
    changes: dict[Annotated[str, Meta(max_length=200)], Change]


class SignatureApplied(_Body):
    target: Annotated[str, Meta(min_length=1, max_length=300)]
    signed_hash: Hex64
    meaning: Name
    signer: Name
    full_name: Annotated[str, Meta(max_length=500)]
    note: Text | None = None


class PhotoImported(_Body):
    sha256: Hex64
    size: Count | None = None
    format: Annotated[str, Meta(max_length=20)] | None = None
    width: Count | None = None
    height: Count | None = None
    captured_at: Annotated[str, Meta(max_length=100)] | None = None
    camera: Annotated[str, Meta(max_length=500)] | None = None
    name: Annotated[str, Meta(max_length=1000)] | None = None
    has_gps: bool | None = None


class LoggerSummary(_Body):
    first: Instant
    last: Instant
    readings: Count


class LoggerSpan(_Body):
    start: Instant
    end: Instant
    min_c: Number | None = None
    max_c: Number | None = None
    open: bool | None = None


ProductCode = Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")]
"""A protocol's product code (format 1: its product's name): printable, no control characters."""


class JudgedRange(_Body):
    """A product stored at another range than its unit's, judged by its own (issue 17)."""

    product: ProductCode
    low_c: Number
    high_c: Number


class JudgedSeries(JudgedRange):
    excursions: list[LoggerSpan] = []


class LoggerImported(_Body):
    unit_id: Name
    sha256: Hex64
    name: Annotated[str, Meta(min_length=1, max_length=1000)]
    format: Literal["csv", "fridgetag", "elitech"]
    zone: Name
    """The unit's zone the file was parsed in: a hub parses the file again with it."""
    summary: LoggerSummary
    low_c: Number
    high_c: Number
    serial: Annotated[str, Meta(max_length=200)] | None = None
    excursions: list[LoggerSpan] = []
    products: list[JudgedSeries] = []


class ManualJudged(_Body):
    """A manual reading judged against a product's range after it was recorded."""

    event: EventId
    at: Instant
    temp_c: Number


class ProductJudged(JudgedSeries):
    manual: list[ManualJudged] = []


class ReadingsJudged(_Body):
    """A unit's readings judged against the products a newly loaded protocol version adds (issue 17)."""

    unit_id: Name
    protocol_id: Name
    version: Name
    products: Annotated[list[ProductJudged], Meta(min_length=1, max_length=200)]


class QueryAnswered(_Body):
    query: EventId
    answer: Text
    amendment: EventId | None = None


class Card(_Body):
    """A device card as a registry event carries it (`sync.cards.Card.as_dict`)."""

    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    site: Name
    name: Name
    kind: Literal["ward", "hub"]
    sign_public: Annotated[str, Meta(min_length=1, max_length=200)]
    key_id: Annotated[str, Meta(pattern=r"^[0-9A-F]{16}$")]
    age_recipient: Annotated[str, Meta(pattern=r"^age1[0-9a-z]{58}$")]


class HubSet(Card):
    url: Annotated[str, Meta(max_length=2000)] | None = None


class RecipientAdded(_Body):
    age_recipient: Annotated[str, Meta(pattern=r"^age1[0-9a-z]{58}$")]
    label: Annotated[str, Meta(max_length=500)]


class DeviceRegistered(Card):
    replaces: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")] | None = None


class DeviceRetired(_Body):
    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]


class UserChange(_Body):
    site: Name
    username: Name
    action: Literal["deactivate", "lock", "unlock"]


class Decision(_Body):
    site: Name
    decision: Annotated[str, Meta(min_length=1, max_length=500)]
    detail: Text | None = None


class QueryRaised(_Body):
    site: Name
    target_event: EventId
    field: Name
    question: Text


class QueryOpened(_Body):
    """A data query a protocol rule of severity `query` opened on the record saved with it (ward)."""

    site: Name
    target_event: EventId
    field: Name
    question: Text
    rule: Name


class QueryClosed(_Body):
    query: EventId
    note: Text | None = None


class BundleFlag(_Body):
    """A hub's flag on a device: a fork or a held bundle."""

    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    bundle_seq: Count
    site: Name | None = None
    detail: Text | None = None


class BundleHeld(BundleFlag, kw_only=True):
    reason: Name


class BundleRefused(_Body):
    """The hub's record of a bundle it refused (what, why, which device)."""

    file: Annotated[str, Meta(max_length=1000)]
    reason: Text
    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")] | None = None
    site: Name | None = None
    bundle_seq: Count | None = None


class RollbackAccepted(_Body):
    recorded: Count | None
    database: Count


class BehindAccepted(_Body):
    head: Count
    newer: Count
    found: Literal["restore", "receipt"]


class DeviceMoved(_Body):
    computer: Hex64


class ScannerSet(_Body):
    """`wardcrf.scanner`: the profile as the service checked it (the bounds are its own)."""

    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    ends: Literal["enter", "gap"]
    gap_ms: Annotated[int, Meta(ge=scanner.MIN_GAP_MS, le=scanner.MAX_GAP_MS)] | None = None


class RollbackCounterReset(_Body):
    database: Count


class RestoredTrigger(Struct):
    name: Name
    found: Name


class TriggersRestored(_Body):
    triggers: list[RestoredTrigger]


class SigningKeySealed(_Body):
    device: Name
    key_id: Name


class RecoveryKeyChecked(_Body):
    signing_key_added: bool


class DraftsPurged(_Body):
    owner: Name
    count: Count
    forms: dict[Name, Count]
    older_than_days: Number | None = None


class DictionaryLoaded(_Body):
    dictionary: Name
    version: Name
    terms: Count
    files: dict[Name, dict[str, Any]]
    language: Name | None = None


class Coded(_Body):
    record: EventId
    form: Name
    field: Name
    verbatim: Text
    dictionary: Name
    version: Name
    codes: dict[Name, Any]
    subject: Annotated[str, Meta(max_length=300)] | None = None
    replaces: EventId | None = None


class AuditReviewed(_Body):
    since: Annotated[str, Meta(max_length=40)]
    until: Annotated[str, Meta(max_length=40)]
    counts: dict[Name, Count]
    findings_sha256: Hex64
    meaning: Literal["reviewed"]
    signer: Name
    full_name: Annotated[str, Meta(max_length=500)]
    note: Text | None = None


class SdvVerified(_Body):
    target: EventId
    form: Name
    scope: Literal["record", "fields"]
    fields: list[Name]
    values: dict[Name, Hex64]
    sources: list[Annotated[str, Meta(max_length=300)]]
    meaning: Name
    signer: Name
    full_name: Annotated[str, Meta(max_length=500)]
    note: Text | None = None


# -- randomization (issue 20, docs/randomization.md) -------------------------------------

Code = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.=;-]{1,200}$")]
"""An arm, list or stratum code (`site=WUH01;ct_np=HIGH`)."""
Sealed = Annotated[str, Meta(max_length=4096)]
Position = Annotated[int, Meta(ge=1, le=100_000)]


class ListEntry(_Body):
    stratum: Code
    position: Position
    digest: Hex64
    sealed: Sealed
    arm_digest: Hex64 | None = None
    arm_sealed: Sealed | None = None


class ListProtocol(_Body):
    id: Name
    version: Name
    sha256: Hex64


class FactorLevel(_Body):
    code: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,20}$")]
    when: Annotated[str, Meta(max_length=2000)] | None = None


class StratumFactor(_Body):
    """How the ward finds a participant's level of one factor (the protocol's `[[strata]]`)."""

    code: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    asked: bool
    levels: Annotated[list[FactorLevel], Meta(min_length=2, max_length=200)]
    field: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", max_length=130)] | None = None


class ListIssued(_Body):
    """A sealed allocation list for one ward laptop (`randomization.sealing`); the hub signs it."""

    entries: Annotated[list[ListEntry], Meta(min_length=1, max_length=20_000)]
    format: Literal["wardrand/1"]
    list_id: Code = msgspec.field(name="list")
    site: Name
    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    protocol: ListProtocol
    method: Literal["permuted_blocks"]
    reveal: Literal["arm", "kit"]
    list_sha256: Hex64
    list_key: Annotated[str, Meta(max_length=4096)]
    unblind_key: Annotated[str, Meta(max_length=4096)] | None
    for_hub: Annotated[str, Meta(max_length=8 * 1024 * 1024)]
    signed_by: Annotated[str, Meta(pattern=r"^[0-9A-F]{16}$")]
    signature: Annotated[str, Meta(max_length=2000)]
    factors: Annotated[list[StratumFactor], Meta(max_length=20)] = msgspec.field(default_factory=list)
    """Lists made before the factors travelled carry none: every level is then stated by the user."""
    unblind_recipient: Annotated[str, Meta(pattern=r"^age1[0-9a-z]{58}$")] | None = None
    kit_use: Literal["administration", "course"] = "administration"
    """Blinded: "course" when the allocated kit serves all of the participant's doses."""
    """Blinded: the laptop's unblinding recipient the unblinding key is sealed to (None: its own identity)."""


class Allocated(_Body):
    """One entry taken for one participant: what the ward saw (the arm, or a kit number only)."""

    participant: Name
    list_id: Code = msgspec.field(name="list")
    stratum: Code
    position: Position
    digest: Hex64
    salt: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
    levels: dict[Code, Code]
    arm: Code | None = None
    kit: Code | None = None
    computed: Annotated[list[Code], Meta(max_length=20)] = msgspec.field(default_factory=list)
    """The factors whose level the participant's records gave (the rest in `asked`, stated by the user)."""
    asked: Annotated[list[Code], Meta(max_length=20)] = msgspec.field(default_factory=list)


class UnblindingKey(_Body):
    """A ward laptop's unblinding recipient (`unblindkeys`): the hub seals blinded lists' unblinding keys to it."""

    device: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,64}$")]
    recipient: Annotated[str, Meta(pattern=r"^age1[0-9a-z]{58}$")]


class StratumExhausted(_Body):
    stratum: Code
    lists: list[Code]
    participant: Name


class Unblinded(_Body):
    """An emergency unblinding of one participant: who, why, the witness, the arm revealed."""

    participant: Name
    list_id: Code = msgspec.field(name="list")
    stratum: Code
    position: Position
    kit: Code | None
    arm: Code
    arm_digest: Hex64
    salt: Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
    reason: Code
    detail: Text
    witness: Name | None = None


class TrialUnblinded(_Body):
    protocol: Name
    reason: Text


class UnblindedExport(_Body):
    protocol: Name
    file: Annotated[str, Meta(max_length=1000)]
    rows: Count
    sha256: Hex64


BODIES: dict[str, type[Struct]] = {
    "site.initialized": SiteInitialized,
    "user.added": UserAdded,
    "user.deactivated": UserNamed,
    "user.unlocked": UserNamed,
    "user.password_changed": PasswordChanged,
    "user.password_reset": PasswordReset,
    "user.language_set": LanguageSet,
    "user.locked": UserLocked,
    "auth.login_failed": LoginFailed,
    "auth.login_refused": LoginRefused,
    "protocol.loaded": ProtocolLoaded,
    "protocol.reencoded": ProtocolReencoded,
    "protocol.applied": ProtocolApplied,
    "db.backup_made": BackupMade,
    "db.restored": Restored,
    "db.rebuilt": Rebuilt,
    "db.raw_key_shown": Empty,
    "export.plaintext": PlaintextExport,
    "record.submitted": RecordSubmitted,
    "record.amended": RecordAmended,
    "signature.applied": SignatureApplied,
    "photo.imported": PhotoImported,
    "coldchain.logger_imported": LoggerImported,
    "coldchain.readings_judged": ReadingsJudged,
    "query.answered": QueryAnswered,
    "sync.hub_set": HubSet,
    "sync.recipient_added": RecipientAdded,
    "hub.device_registered": DeviceRegistered,
    "hub.device_retired": DeviceRetired,
    "hub.user_change": UserChange,
    "dsmg.decision": Decision,
    "query.raised": QueryRaised,
    "query.opened": QueryOpened,
    "query.closed": QueryClosed,
    "sync.fork_detected": BundleFlag,
    "sync.bundle_held": BundleHeld,
    "sync.bundle_refused": BundleRefused,
    "db.rollback_accepted": RollbackAccepted,
    "device.moved": DeviceMoved,
    "device.scanner_set": ScannerSet,
    "db.behind_accepted": BehindAccepted,
    "db.rollback_counter_reset": RollbackCounterReset,
    "db.triggers_restored": TriggersRestored,
    "device.signing_key_sealed": SigningKeySealed,
    "recovery.key_checked": RecoveryKeyChecked,
    "draft.purged": DraftsPurged,
    "coding.dictionary_loaded": DictionaryLoaded,
    "coding.coded": Coded,
    "sdv.verified": SdvVerified,
    "audit.reviewed": AuditReviewed,
    "randomization.list_issued": ListIssued,
    "randomization.allocated": Allocated,
    "randomization.stratum_exhausted": StratumExhausted,
    "randomization.unblinding_key": UnblindingKey,
    "randomization.unblinded": Unblinded,
    "randomization.trial_unblinded": TrialUnblinded,
    "randomization.exported": UnblindedExport,
}


# -- record data of the forms whose projections index fields --------------------------------


class _Data(Struct, forbid_unknown_fields=False, kw_only=True):
    pass


class _ClinicalScalars(_Data):
    """What the clinical form hooks read besides measurements: plain values, never nested data."""

    dose_number: Scalar = None
    dose: Scalar = None
    kit_id: Scalar = None
    lot: Scalar = None
    volume: Quantity | str = None
    start: Scalar = None
    end: Scalar = None
    given_by: Scalar = None
    day: Scalar = None
    due: Scalar = None
    window: Scalar = None
    timepoint: Scalar = None
    time: Scalar = None
    term: Scalar = None
    prespecified: Scalar = None
    onset: Scalar = None
    grade: Quantity | str = None
    serious: Scalar = None
    causality: Scalar = None
    outcome: Scalar = None
    first_known: Scalar = None
    report_due: Scalar = None
    form_version: Scalar = None
    date: Scalar = None
    sex: Scalar = None
    dob: Scalar = None
    eligible: Scalar = None
    failed_criteria: list[Annotated[str, Meta(max_length=200)]] | None = None


def _clinical_data() -> type[Struct]:
    """`_ClinicalScalars` and the measurements the vitals and dose projections store (schema.sql's `vitals`
    and `doses` columns): a number or a measurement each. Their names are format 1's vocabulary — its
    vital signs and its dose form's amount field (format1-workflow.toml) — read as data, not listed here."""
    from .protocols import format1_shape

    shape = format1_shape()
    measured = dict.fromkeys((*shape["safety"]["vital_signs"]["fields"], shape["record_roles"]["dose"]))
    return msgspec.defstruct(
        "ClinicalData",
        [(name, Quantity | str, None) for name in measured if name not in _ClinicalScalars.__struct_fields__],
        bases=(_ClinicalScalars,),
        kw_only=True,
    )


ClinicalData = _clinical_data()


class UnitData(_Data):
    unit_id: Name
    name: Annotated[str, Meta(max_length=500)]
    location: Annotated[str, Meta(max_length=500)]
    low_c: Number
    high_c: Number
    zone: Name
    interval_s: Count
    target_c: Number | None = None


class LotData(_Data):
    lot: Name
    product: Annotated[str, Meta(max_length=500)]
    expiry: Name
    release_ref: Annotated[str, Meta(max_length=500)]
    quantity: Count
    kits: list[Name] | None = None
    product_code: ProductCode | None = None  # absent before products were told apart: the protocol's first


class TransitLogger(_Data):
    excursions: list[LoggerSpan] | None = None
    high_c: Number | None = None
    low_c: Number | None = None


class ArrivalExpected(_Data):
    """What a receipt's product should arrive as (absent before products were told apart: dry ice, frozen)."""

    dry_ice: bool | None = None
    frozen: bool | None = None


class TransferData(_Data):
    at: Instant
    from_party: Annotated[str, Meta(max_length=500)]
    to_party: Annotated[str, Meta(max_length=500)]
    from_location: Annotated[str, Meta(max_length=500)]
    to_location: Annotated[str, Meta(max_length=500)]
    from_user: Scalar = None
    to_user: Scalar = None
    condition: Scalar = None
    kits: list[Name] | None = None
    logger: TransitLogger | None = None
    arrival_expected: ArrivalExpected | None = None


class ReadingData(_Data):
    at: Instant
    unit_id: Name
    temp_c: Number
    low_c: Number
    high_c: Number
    products: list[JudgedRange] | None = None


class ThawData(_Data):
    kit_id: Name
    start: Instant
    end: Instant
    by: Scalar = None
    reconstitution: Scalar = None


class PreparationData(_Data):
    """A kit prepared at the pharmacy (`coldchain.services.record_preparation`)."""

    kit_id: Name
    product: ProductCode
    start: Instant
    end: Instant
    by: Name
    steps: Annotated[list[Name], Meta(min_length=1, max_length=50)]
    values: dict[Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")], Any] = {}
    use_by: Instant | None = None


class DispositionData(_Data):
    excursion_id: Annotated[str, Meta(max_length=300)]
    decision: Literal["release", "discard"]
    reason: Text
    kits: list[Name] | None = None


FORM_DATA: dict[str, type[Struct]] = {
    **dict.fromkeys(("dose", "vitals", "ae", "consent", "screening", "enrollment"), ClinicalData),
    "coldchain.unit": UnitData,
    "coldchain.lot": LotData,
    "coldchain.receipt": TransferData,
    "coldchain.handover": TransferData,
    "coldchain.reading": ReadingData,
    "coldchain.thaw": ThawData,
    "coldchain.preparation": PreparationData,
    "coldchain.disposition": DispositionData,
}
"""Forms whose projections (`records.form_hook`) read fields by name; other forms' data is any JSON.

Required fields and their types follow the projection tables' NOT NULL and
CHECK constraints (schema.sql), so a record the schema admits is one the
hooks can write."""


# -- checking ----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _zone_ok(name: str) -> bool:
    from .clock import zone

    try:
        zone(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def _why(exc: msgspec.ValidationError) -> str:
    return str(exc).replace("`$.", "`").replace("`$`", "the value")


def check_envelope(obj: dict[str, Any]) -> str | None:
    """None if an event line's parsed object has every key with its type; else what is wrong."""
    try:
        env = msgspec.convert(obj, Envelope)
    except msgspec.ValidationError as exc:
        return _why(exc)
    if env.body is not None and not isinstance(env.body, dict):
        return "`body` is not an object"
    if env.id != f"{env.device}-{env.seq}":
        return f"id {env.id!r} is not {env.device}-{env.seq}"
    if not _zone_ok(env.zone):
        return f"zone {env.zone[:64]!r} is not a known time zone"
    return None


_PER_DEVICE = ("device", "role", "site", "type", "tz", "user", "zone")
"""Envelope keys whose values a device's bundle repeats line after line (`envelope_checker`)."""

_EnvelopeRest = msgspec.defstruct(
    "EnvelopeRest",
    [(f.name, Any if f.name in _PER_DEVICE else f.type) for f in msgspec.structs.fields(Envelope)],
    forbid_unknown_fields=True,
)
"""`Envelope` with the per-device keys left untyped: every key still required, no other allowed."""


def envelope_checker() -> Callable[[dict[str, Any]], str | None]:
    """`check_envelope` for the lines of one bundle, checking the per-device keys once per combination.

    A bundle's thousands of lines repeat one device, site, zone and a few types, roles and users;
    their patterns and the zone lookup are half of the envelope check. Each key's verdict depends on
    its value alone, so once a line with these values has passed the whole check, a line with the
    same values passes iff the rest of it does (`_EnvelopeRest`, and the body and id checks). Only
    a pass is remembered; a line failing anything is checked whole again (`check_envelope`), so
    every refusal has the words the whole check gives. The values that passed are text or null:
    no value of another type compares equal to them."""
    passed: set[tuple[Any, ...]] = set()
    per_device = itemgetter(*_PER_DEVICE)

    def check(obj: dict[str, Any]) -> str | None:
        try:
            key = per_device(obj)
            known = key in passed
        except (KeyError, TypeError):  # a key missing, or a value that cannot be a key (a list)
            return check_envelope(obj)
        if not known:
            problem = check_envelope(obj)
            if problem is None:
                passed.add(key)
            return problem
        try:
            env: Any = msgspec.convert(obj, _EnvelopeRest)
        except msgspec.ValidationError:
            return check_envelope(obj)
        if (env.body is not None and not isinstance(env.body, dict)) or env.id != f"{env.device}-{env.seq}":
            return check_envelope(obj)
        return None

    return check


def check_body(type_: str, body: dict[str, Any]) -> str | None:
    """None if `body` fits the schema of `type_` (and its form's data, for records); else what is wrong."""
    schema = BODIES.get(type_)
    if schema is None:
        return f"event type {type_[:60]!r} is unknown here (not in the authority table)"
    try:
        parsed = msgspec.convert(body, schema)
    except msgspec.ValidationError as exc:
        return "body " + _why(exc)
    if isinstance(parsed, RecordSubmitted):
        return check_form_data(parsed.form, parsed.data)
    if isinstance(parsed, ProtocolLoaded):
        import hashlib

        if hashlib.sha256(parsed.source.encode("utf-8")).hexdigest() != parsed.sha256:
            return "body `sha256` is not the SHA-256 of its protocol source"
    return None


def check_form_data(form: str, data: dict[str, Any]) -> str | None:
    """None if a record's data has the fields its form's projections read, typed; else what is wrong."""
    try:
        schema = FORM_DATA.get(form)
        if schema is not None:
            msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        return f"{form} data " + _why(exc)
    return None


def require_form_data(event_id: str, form: str, data: dict[str, Any]) -> None:
    """`check_form_data`, raising `Refused` (a record whose current data a projection cannot read)."""
    problem = check_form_data(form, data)
    if problem:
        raise Refused(f"record {event_id}: {problem}")
