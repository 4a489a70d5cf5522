"""The features of wardcrf, listed in one place, and the registry they plug into.

The core (event log, records, audit, sync import) runs code that features
own: projectors that keep each feature's tables, hooks on form records,
pre-dose gates, worklist sources, work after a sync bundle, integrity checks
for `audit verify` and derived indexes for `db rebuild`. Each feature module
has one `register(registry)` function saying what it adds; `FEATURES` below
lists them in the order they run; `install()` calls each once. Nothing
registers itself when imported: what a reader sees here is what runs, and a
static import analysis sees the same graph (`lint-imports`, docs/architecture.md).

Whoever starts the program calls `install()` once, before any site's database
is created or opened: the command line (`wardcrf.cli`), the ward app's sign-in
(`screens/ward.py: sign_in`), the test run (`tests/conftest.py`), a script or a
benchmark. The site never does (this module imports the features, which open
sites); `Site.init` and `Site.unlock_key` refuse until it has run
(`registration.require_installed`), so a forgotten call fails loudly instead of
projecting events with half their projectors. Registration order is behaviour: a
type's projectors and a form's hooks run in the order registered (the ward
queue's hooks follow the forms' own), audit checks report in that order.

To add a feature: write its module(s), give one of them a `register(registry)`
adding what it needs with the methods below, and add it to `FEATURES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import (
    audit,
    authority,
    backup,
    carried,
    eventlog,
    evidence,
    ingest,
    kits,
    projections,
    protocol,
    records,
    registration,
    scanner,
    sdv,
    signatures,
    users,
    workflow,
)
from .coding import projection as coding
from .coldchain import feature as coldchain
from .engine import loading as engine_loading
from .photos import feature as photos
from .randomization import feature as randomization
from .sync import feature as sync
from .workflow import dosing, status


class Registry:
    """Where a feature plugs in: each method adds to the table its owner reads.

    The tables stay with their owners (`eventlog` runs projectors, `records`
    form hooks, `audit` checks...); this is the one door features use.
    Adding the same function twice is a no-op, so `install` is idempotent.
    """

    def projector(self, fn: eventlog.Projector, *types: str) -> None:
        """`fn(store, event)` keeps projection tables for `types`: deterministic, no clock (replayed by `db rebuild`)."""
        eventlog.add_projector(fn, *types)

    def every_event_projector(self, fn: eventlog.Projector) -> None:
        """`fn(store, event)` sees every event after its type's own projectors (indexes by content)."""
        eventlog.every_event_projector(fn)

    def form_hook(self, fn: records.FormHook, *forms: str) -> None:
        """`fn(store, record)` projects a form after its submission and each amendment."""
        records.add_form_hook(fn, *forms)

    def record_hook(self, fn: records.FormHook) -> None:
        """`fn(store, record)` sees every form's records, after the form's own hooks."""
        records.record_hook(fn)

    def record_batch_hook(self, fn: records.BatchHook, *forms: str, tables: tuple[str, ...]) -> None:
        """`fn(store, records)` projects a run of records at once (a synced bundle's, a replay's; `append`'s one),
        for `forms` (none: every form, after the forms' own hooks); `tables`: every table it reads or writes
        (`records.add_batch_hook`)."""
        records.add_batch_hook(fn, *forms, tables=tables)

    def protocol_reader(self, fn: protocol.Format2Reader) -> None:
        """`fn(source, filename)` reads a stored format-2 version as the ward's `Protocol` (`protocol.active`)."""
        protocol.read_format_2_with(fn)

    def format1_run_as(self, fn: protocol.Format1Through) -> None:
        """`fn(p)` gives the ward's `Protocol` a stored format-1 version is run as (its format-2 re-encoding), or
        None (`protocol.run_as`)."""
        protocol.read_format_1_through(fn)

    def after_protocol_load(self, fn: protocol.AfterLoad) -> None:
        """`fn(session, previous)` runs in a protocol load's transaction once the new version is active."""
        protocol.after_load(fn)

    def form_actions(self, form: str, *, submit: str, amend: str = "record.amend") -> None:
        """The `roles.py` actions that may submit and amend records of `form` (checked again on sync import)."""
        authority.form_actions(form, submit=submit, amend=amend)

    def form_actions_of(self, fn: authority.FormActionsOf) -> None:
        """`fn(store, event, form, arriving)`: a form's actions under the record's version (format 2's names)."""
        authority.form_actions_of(fn)

    def record_values_check(self, fn: authority.RecordValuesCheck) -> None:
        """`fn(store, event, form, arriving)`: what is wrong with an imported record's values, or None."""
        authority.record_values_check(fn)

    def dose_gate(self, fn: dosing.AnyDoseGate) -> None:
        """`fn(store, kit, start)` raises `Refused` when the kit may not be given now; a gate that also takes a
        keyword `product` is told the product a format-2 administration gives (`dosing.call_dose_gate`)."""
        dosing.register_dose_gate(fn)

    def allocation_gate(self, fn: dosing.AllocationGate) -> None:
        """`fn(store, participant, kit)` raises `Refused` when the scanned kit is not the participant's allocated one."""
        dosing.register_allocation_gate(fn)

    def course_kit(self, fn: kits.KitAnswer) -> None:
        """`fn(store, kit)`: the participant whose allocated kit serves their whole course, or None."""
        kits.register_course_kit(fn)

    def kit_holder(self, fn: kits.KitAnswer) -> None:
        """`fn(store, kit)`: the participant the records reserve a kit for (e.g. allocated it), or None."""
        kits.register_kit_holder(fn)

    def today_source(self, fn: status.TodaySource) -> None:
        """`fn(store, at)` adds items to the ward's worklist (`workflow.status.today`)."""
        status.register_today_source(fn)

    def photo_evidence(self, services: evidence.PhotoEvidence) -> None:
        """The photo store's services the core calls (resolve, look, re-hash, a record's photos)."""
        evidence.set_photo_evidence(services)

    def carried_file(self, extractor: carried.Extractor) -> None:
        """Which events cite files a sync bundle must carry beside them, and where (`sync/bundle.py`)."""
        carried.add(extractor)

    def after_ingest(self, fn: ingest.AfterIngest, *types: str, holds: str | None = None) -> None:
        """`fn(store, events)` runs inside a sync bundle's transaction after its events are stored (with
        `types`: only for a bundle holding an event of one of them, the types it reads); `holds` says what
        it holds for the coordinator, in people's words (named by an importer that cannot run it)."""
        ingest.after_ingest_hook(fn, *types, holds=holds)

    def audit_check(self, name: str, fn: audit.Check) -> None:
        """`fn(store)` is one named integrity check of `audit verify`."""
        audit.register_check(name)(fn)

    def audit_site_check(self, fn: audit.SiteCheck) -> None:
        """`fn(session)`: `audit verify`'s checks of what the site keeps beside its file (a PostgreSQL hub)."""
        audit.register_site_check(fn)

    def backup_kept_elsewhere(self, fn: backup.KeptElsewhere) -> None:
        """`fn(session)`: the kept bundles a photo archive beside the site's file points to (a PostgreSQL
        hub's), which `db backup` refuses to leave out, as it refuses for its file's."""
        backup.register_kept_elsewhere(fn)

    def derived_index(
        self, fn: projections.DerivedIndex, *tables: str, migrations: tuple[str, ...] = ()
    ) -> None:
        """`fn(target, source)` re-derives `tables` from stored evidence (`db rebuild`, `--check`), and on a
        site upgraded through one of `migrations` (a column only the derivation fills) at sign-in."""
        projections.derived_index(*tables)(fn)
        for name in migrations:
            projections.rederive_when_migrated(name, fn)


@dataclass(frozen=True)
class Feature:
    name: str
    register: Callable[[Registry], None]


FEATURES: tuple[Feature, ...] = (
    Feature("audit trail", audit.register),
    Feature("users", users.register),
    Feature("records", records.register),
    Feature("signatures", signatures.register),
    Feature("photos", photos.register),
    Feature("protocols", protocol.register),
    Feature("format-2 protocols", engine_loading.register),
    Feature("kit use", kits.register),
    Feature("workflow", workflow.register),
    Feature("cold chain", coldchain.register),
    Feature("sync", sync.register),
    Feature("coding", coding.register),
    Feature("source data verification", sdv.register),
    Feature("randomization", randomization.register),
    Feature("scanner profile", scanner.register),
)

_installed = False


def install() -> None:
    """Register every feature, once per process (idempotent)."""
    global _installed
    if _installed:
        return
    registry = Registry()
    for feature in FEATURES:
        feature.register(registry)
    _installed = True
    registration.mark_installed()
