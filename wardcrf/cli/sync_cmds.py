"""`wardcrf device`, `wardcrf sync`, `wardcrf hub` and `wardcrf audit verify-bundle`.

Thin commands over `wardcrf.sync` (imported inside each command so the
crypto and HTTP libraries stay off the start-up path).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import Refused, UsageError, VerificationFailed
from ..site import Session
from .common import (
    DataDirOption,
    JsonOption,
    ask_new_password,
    console,
    err_console,
    finite_number,
    print_json,
    resolve_data_dir,
    session,
)

device_app = typer.Typer(
    help="This laptop: its keys and the card a hub registers; its barcode scanner's profile.",
    no_args_is_help=True,
)
sync_app = typer.Typer(
    help="Send this ward's data to the hub and receive what waits for it.", no_args_is_help=True
)
hub_app = typer.Typer(
    help="The coordinator hub: register devices, import bundles, serve wards.", no_args_is_help=True
)

HubDirOption = Annotated[Path, typer.Option("--data-dir", "-d", help="The hub's data directory.")]
UrlArg = Annotated[
    str | None, typer.Argument(help="Hub URL, e.g. https://hub.example.org (default: set-hub --url).")
]


# -- device -------------------------------------------------------------------------


@device_app.command("card")
def device_card(
    data_dir: DataDirOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the card to this file.")] = None,
    qr: Annotated[
        bool, typer.Option("--qr/--no-qr", help="Show the card as a QR code in the terminal.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print this device's public keys and fingerprints (the card to register at the hub)."""
    from ..sync import registry

    with session(data_dir) as s:
        card = registry.own_card(s.store)
    if out is not None:
        out.write_text(card.text(), "utf-8")
    if as_json:
        print_json(card.as_dict())
        return
    typer.echo(card.text(), nl=False)
    if qr:
        typer.echo(card.qr())


# -- sync (ward) --------------------------------------------------------------------


@sync_app.command("set-hub")
def set_hub(
    card_file: Annotated[Path, typer.Argument(help="The hub's card (from `wardcrf hub card`).")],
    url: Annotated[str | None, typer.Option("--url", help="The hub's URL for push/pull/watch.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Trust a hub: its key signs receipts and hub bundles; bundles are encrypted to it."""
    from ..sync import registry
    from ..sync.cards import Card

    card = Card.read(card_file)
    with session(data_dir) as s:
        registry.set_hub(s, card, url)
    console.print(f"Hub {card.device} ({card.name}) set; fingerprint {card.fingerprint}", highlight=False)


@sync_app.command("add-recipient")
def add_recipient(
    recipient: Annotated[str, typer.Argument(help="An age recipient (age1...), e.g. the auditor's.")],
    label: Annotated[str, typer.Option("--label", help="Who holds the matching identity.")] = "auditor",
    data_dir: DataDirOption = None,
) -> None:
    """Add an extra age recipient (an auditor) to every bundle exported from now on."""
    from ..sync import registry

    with session(data_dir) as s:
        registry.add_recipient(s, recipient, label)
    console.print(f"Recipient {recipient} ({label}) added to future bundles.", highlight=False)


@sync_app.command("export")
def export(
    to: Annotated[Path, typer.Option("--to", help="Directory to write bundles to (e.g. a USB stick).")],
    limit_mb: Annotated[
        float, typer.Option("--limit-mb", parser=finite_number, help="Bundle size limit in MB.")
    ] = 100,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write every event not yet receipted by the hub (and its photos) as signed, encrypted bundles."""
    from ..sync import ward

    with session(data_dir) as s:
        res = ward.export(s, to, limit=int(limit_mb * 1024 * 1024))
    if as_json:
        print_json(
            {"files": [str(f) for f in res.files], "new_bundles": res.new_bundles, "events": res.events}
        )
        return
    if not res.files:
        console.print("Nothing to export: the hub has receipted every event.")
    for f in res.files:
        console.print(f"wrote {f}", highlight=False)


@sync_app.command("import")
def sync_import(
    files: Annotated[
        list[Path], typer.Argument(help="Hub bundles (.tar.age) or receipts (.json), each with .minisig.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Apply hub bundles (DSMG decisions, queries, user changes) and receipts."""
    from ..sync import ward

    with session(data_dir) as s:
        for f in sorted(files, key=lambda p: (p.name.endswith(".json"), p.name)):
            console.print(ward.import_file(s, f), highlight=False)


def _local(at: str, zone_name: str) -> str:
    """A stored UTC stamp as the ward reads it: local minute and offset (2026-12-07 08:29 +01:00)."""
    from ..clock import parse_iso, utc_offset, zone

    moment = parse_iso(at)
    return f"{moment.astimezone(zone(zone_name)):%Y-%m-%d %H:%M} {utc_offset(moment, zone_name)}"


@sync_app.command("status")
def status(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Last export, last receipt, events and photos pending, hub reachability; this laptop's scanner profile."""
    from .. import scanner
    from ..sync import ward

    with session(data_dir) as s:
        st = ward.status(s)
        profile = scanner.profile(s)
        zone_name = s.ctx.zone
    if as_json:
        print_json({**st, "scanner": profile.as_dict()})
        return
    console.print(
        f"device {st['device']}, hub {st['hub'] or '(none: run sync set-hub)'} {st['hub_url'] or ''}",
        highlight=False,
    )
    console.print(profile.describe(), highlight=False)
    console.print(
        f"events pending: {st['events_pending']}, photos pending: {st['photos_pending']}, "
        f"bundles awaiting receipt: {st['bundles_unreceipted']}"
    )
    exp, rec, probe = st["last_export"], st["last_receipt"], st["hub_reachability"]
    exported = "never"
    if exp:
        exported = f"{_local(exp['at'], zone_name)} ({exp['files']} file{'' if exp['files'] == 1 else 's'})"
    receipted = f"#{rec['seq']} at {_local(rec['at'], zone_name)}" if rec else "never"
    console.print(f"last export: {exported}; last receipt: {receipted}", highlight=False)
    probed = "not probed yet"
    if probe:
        probed = f"{probe['state']} at {_local(probe['at'], zone_name)}"
        probed += f" ({probe['detail']})" if probe["detail"] else ""
    state = st["state"]
    if state.startswith("synced "):
        state = f"synced {_local(state.removeprefix('synced '), zone_name)}"
    console.print(f"hub: {probed}; state: {state}", highlight=False)
    for n in st["hub_notices"]:
        console.print(f"[bold red]HUB NOTICE:[/] {n}", highlight=False)
    for q in st["open_queries"]:
        console.print(
            f"query {q['query_id']} ({q['status']}): {q['target_event']} {q['field']}: {q['question']}",
            highlight=False,
        )


@sync_app.command("answer-query")
def answer_query(
    query_id: Annotated[str, typer.Argument(help="The query id (sync status lists open queries).")],
    answer: Annotated[str, typer.Option("--answer", help="The answer (a comment).")],
    amendment: Annotated[
        str | None, typer.Option("--amendment", help="Event id of the amendment that fixed the field.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Answer a data query from the hub by a comment (after amending the field if needed)."""
    from ..sync import registry

    with session(data_dir) as s:
        registry.answer_query(s, query_id, answer, amendment=amendment)
    console.print(
        f"Query {query_id} answered; the answer goes to the hub with the next sync.", highlight=False
    )


if TYPE_CHECKING:
    from ..eventlog import Event
    from ..sync.transport import Client


def _client(s: Session, url: str | None) -> Client:
    from ..sync import service

    return service.hub_client(s, url)


@sync_app.command("push")
def push(url: UrlArg = None, data_dir: DataDirOption = None) -> None:
    """Send pending bundles to the hub (only what it lacks) and apply its receipt."""
    from ..sync import service

    with session(data_dir) as s:
        res = service.push(s, _client(s, url))
    for line in res:
        console.print(line, highlight=False)


@sync_app.command("pull")
def pull(url: UrlArg = None, data_dir: DataDirOption = None) -> None:
    """Fetch the latest receipt and every hub bundle waiting for this ward, and apply them."""
    from ..sync import service

    with session(data_dir) as s:
        res = service.pull(s, _client(s, url))
    for line in res:
        console.print(line, highlight=False)


@sync_app.command("watch")
def watch(
    url: UrlArg = None,
    data_dir: DataDirOption = None,
    rounds: Annotated[
        int, typer.Option("--rounds", help="Stop after N rounds (0: run until interrupted).")
    ] = 0,
) -> None:
    """Probe the hub with backoff; push and pull whenever it answers (headless laptops)."""
    from ..sync import service

    with session(data_dir) as s:
        svc = service.SyncService(s, _client(s, url), on_event=lambda m: console.print(m, highlight=False))
        svc.run(max_rounds=rounds or None)


@sync_app.command("restore")
def restore(
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d", help="The new laptop's data directory.")],
    hub_card: Annotated[Path | None, typer.Option("--hub-card", help="Step 1: the hub's card.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Step 1: the site being restored.")] = None,
    device_name: Annotated[
        str | None, typer.Option("--device-name", help="Step 1: a name for this laptop.")
    ] = None,
    admin: Annotated[str | None, typer.Option("--admin", help="Step 1: this laptop's administrator.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="The hub URL (step 2 over HTTP).")] = None,
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Step 2 from a directory written by `hub export --restore`.")
    ] = None,
) -> None:
    """Replacement laptop: step 1 makes new keys and prints the card to register at the hub with
    --replaces OLD; step 2 brings the site's events and photos back, verified."""
    from ..sync import registry
    from ..sync import restore as restore_mod
    from ..sync.cards import Card
    from ..sync.transport import Client

    target = resolve_data_dir(data_dir)
    if not (target / "keyslots.json").exists():
        if not (hub_card and site and device_name and admin):
            raise UsageError("step 1 needs --hub-card, --site, --device-name and --admin")
        password = ask_new_password(env="WARDCRF_PASSWORD", who=f"admin {admin}")
        res, card = restore_mod.provision(
            target,
            site=site,
            device_name=device_name,
            admin=admin,
            password=password,
            hub_card=Card.read(hub_card),
            url=url,
        )
        (target / "device.card").write_text(card.text(), "utf-8")
        typer.echo(card.text(), nl=False)
        console.print(f"\nRecovery key (shown once): [bold]{res.recovery_key}[/]", highlight=False)
        console.print(
            f"Card written to {target / 'device.card'}. At the hub: wardcrf hub register-device "
            "CARD --replaces OLD_DEVICE; then run this command again with --url or --from.",
            highlight=False,
        )
        return
    with session(target) as s:
        hub = registry.require_hub(s.store)
        client = Client(url or hub["url"]) if (url or hub["url"]) and from_dir is None else None
        for line in restore_mod.complete(s, client=client, from_dir=from_dir):
            console.print(line, highlight=False)


# -- hub ----------------------------------------------------------------------------


@hub_app.command("init")
def hub_init(
    data_dir: HubDirOption,
    admin: Annotated[str, typer.Option("--admin", help="User name of the hub's first administrator.")],
    site: Annotated[str, typer.Option("--site", help="The hub's own site code.")] = "HUB",
    name: Annotated[str, typer.Option("--name", help="A name for the hub machine.")] = "hub",
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            envvar="WARDCRF_HUB_DATABASE",
            help="Keep the wards' events, the ledger and the transparency log in this PostgreSQL database"
            " (a libpq DSN or postgresql:// URL, an empty database; docs/hub-postgres.md). Default: SQLCipher.",
        ),
    ] = None,
) -> None:
    """Create a coordinator hub: its own encrypted database and key pair (and its PostgreSQL store, with --database)."""
    from ..sync import hub

    if database is not None and database.strip():
        from ..sync import pghub
        from ..sync.pgstore import describe

        pghub.check_reachable(database)  # before the password prompt: a typo costs nothing
        password = ask_new_password(env="WARDCRF_PASSWORD", who=f"hub admin {admin}")
        res = hub.init(
            resolve_data_dir(data_dir),
            admin=admin,
            password=password,
            site=site,
            name=name,
            database=database,
        )
        console.print(f"Created hub {site} (device {res.device}) in {data_dir}", highlight=False)
        console.print(
            f"Its wards' events, ledger and transparency log go to the {describe(database)};"
            f" the DSN, without any password, is kept in {data_dir / pghub.DATABASE_FILE}"
            " (passwords: ~/.pgpass or WARDCRF_HUB_DATABASE)",
            highlight=False,
        )
    else:
        password = ask_new_password(env="WARDCRF_PASSWORD", who=f"hub admin {admin}")
        res = hub.init(resolve_data_dir(data_dir), admin=admin, password=password, site=site, name=name)
        console.print(f"Created hub {site} (device {res.device}) in {data_dir}", highlight=False)
    console.print("\n[bold red]Recovery key — shown once. Store it apart from this machine:[/]")
    console.print(f"\n    [bold]{res.recovery_key}[/]\n", highlight=False)


@hub_app.command("card")
def hub_card(
    data_dir: HubDirOption,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the card to this file.")] = None,
    qr: Annotated[bool, typer.Option("--qr/--no-qr", help="Show the card as a QR code too.")] = False,
) -> None:
    """Print the hub's public keys: the card a ward imports with `sync set-hub`."""
    device_card(data_dir=data_dir, out=out, qr=qr, as_json=False)


@hub_app.command("register-device")
def register_device(
    card_file: Annotated[Path, typer.Argument(help="The ward device's card (`wardcrf device card`).")],
    data_dir: HubDirOption,
    replaces: Annotated[
        str | None, typer.Option("--replaces", help="Device id this laptop replaces (retired).")
    ] = None,
) -> None:
    """Trust a ward device's signing key; confirm its fingerprint with the ward first."""
    from ..sync import registry
    from ..sync.cards import Card

    card = Card.read(card_file)
    with session(data_dir) as s:
        registry.register_device(s, card, replaces=replaces)
    console.print(
        f"Registered {card.device} ({card.name}, site {card.site}); fingerprint {card.fingerprint}",
        highlight=False,
    )


@hub_app.command("import")
def hub_import(
    files: Annotated[
        list[Path], typer.Argument(help="Bundles (.tar.age, each with its .minisig beside it).")
    ],
    data_dir: HubDirOption,
    receipts_to: Annotated[
        Path | None, typer.Option("--receipts-to", help="Write signed receipts here.")
    ] = None,
) -> None:
    """Verify and apply ward bundles: all or nothing, idempotent; forks and participant-id clashes held and flagged."""
    from rich.markup import escape

    from ..sync import engine, hub

    failed: list[str] = []

    def report(item: hub.FileImport) -> None:
        f, res = item.path, item.result
        # What was applied goes to stdout; a refused or held bundle is a refusal: stderr, one line each.
        if res is None:
            why = (item.refused or "").removeprefix(f"{f.name}: ")  # the line names the file once
            err_console.print(f"[red]refused[/] {f.name}: {escape(why)}", highlight=False)
            failed.append(f"{f.name}: {why}")
            return
        mark = "[green]ok[/]" if res.ok else f"[bold red]{res.outcome.status.upper()}[/]"
        (console if res.ok else err_console).print(f"{mark} {f.name}: {res.outcome.message}", highlight=False)
        if not res.ok:
            failed.append(res.outcome.message)
        if receipts_to is not None and res.receipt is not None:
            name, data, sig = res.receipt
            engine.atomic_write(receipts_to / (name + ".minisig"), sig)
            engine.atomic_write(receipts_to / name, data)

    with session(data_dir) as s:
        hub.import_files(s, files, on_done=report)
    if failed:
        raise Refused(f"{len(failed)} of {len(files)} bundle(s) not applied; first: {failed[0]}")


@hub_app.command("export")
def hub_export(
    device: Annotated[str, typer.Option("--device", help="The ward device the bundles are for.")],
    to: Annotated[Path, typer.Option("--to", help="Directory (e.g. a USB stick).")],
    data_dir: HubDirOption,
    restore: Annotated[
        bool, typer.Option("--restore", help="Also the site's bundles for a replacement laptop.")
    ] = False,
) -> None:
    """Write the hub bundles and the latest receipt waiting for one ward (USB delivery)."""
    from ..sync import hub

    with session(data_dir) as s:
        for f in hub.outbound_files(s, device, to, restore=restore):
            console.print(f"wrote {f}", highlight=False)


@hub_app.command("log")
def hub_log(
    data_dir: HubDirOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the checkpoint chain (JSON).")],
) -> None:
    """Write the hub's transparency log: every signed checkpoint, with the consistency proof
    between each, for `wardcrf audit verify-log` (prints the key to verify it with)."""
    from ..sync import engine, hub, hublog

    if out.exists():
        raise UsageError(f"--out {out}: exists; the chain is never written over another file")
    with session(data_dir) as s:
        hub.require_hub(s)
        with hub.ledger_store(s) as ledger:
            data, vkey = hublog.chain_for_auditor(s, ledger)
    engine.atomic_write(out, data)
    console.print(f"wrote {out}", highlight=False)
    console.print(f"verifier key: {vkey}", highlight=False)


@hub_app.command("copy-to-postgres")
def hub_copy_to_postgres(
    data_dir: HubDirOption,
    database: Annotated[
        str,
        typer.Option(
            "--database",
            envvar="WARDCRF_HUB_DATABASE",
            help="The PostgreSQL database (a libpq DSN or postgresql:// URL; docs/hub-postgres.md).",
        ),
    ],
) -> None:
    """Copy the hub's ledger and transparency log into PostgreSQL (run again: what is new), then check
    the copy has the hub's tree root and latest signed checkpoint (else nothing is copied)."""
    from ..sync import hub, pgledger
    from ..sync.pgstore import PgStore

    with session(data_dir) as s:
        s.require("hub.manage", what="copy the hub's ledger to PostgreSQL")
        hub.require_hub(s)
        from ..sync import pghub

        if pghub.configured(s.site.data_dir):
            raise UsageError(
                "this hub keeps its ledger and log in PostgreSQL already (hub-database); nothing copied"
            )
        dst = PgStore(database)
        try:
            dst.migrate()
            done = pgledger.copy(s.store, dst)
        finally:
            dst.close()
    console.print(
        f"copied to {dst.name}: a log of {done.leaves} bundle outcomes ({done.new_leaves} new),"
        f" {done.checkpoints} signed checkpoints, {done.applied} bundles applied, {done.held} held;"
        " root and latest checkpoint match the hub's",
        highlight=False,
    )


@hub_app.command("serve")
def serve(
    data_dir: HubDirOption,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (TLS: put a reverse proxy in front).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    max_body_mb: Annotated[
        int,
        typer.Option(
            "--max-body-mb", help="Largest bundle accepted in one push, MiB (read while it streams)."
        ),
    ] = 512,
    body_idle_timeout: Annotated[
        float,
        typer.Option(
            "--body-idle-timeout",
            envvar="WARDCRF_HUB_BODY_IDLE_TIMEOUT",
            parser=finite_number,
            help="Longest pause in a push body, seconds; then it is cut (408), nothing kept.",
        ),
    ] = 60.0,
    body_min_rate: Annotated[
        int,
        typer.Option(
            "--body-min-rate",
            envvar="WARDCRF_HUB_BODY_MIN_RATE",
            help="Slowest average a push body may arrive at after its first idle-timeout seconds, bytes/s (0: off).",
        ),
    ] = 1024,
    pool_size: Annotated[
        int,
        typer.Option(
            "--pool-size",
            envvar="WARDCRF_HUB_POOL_SIZE",
            help="A PostgreSQL hub: most connections this worker opens to the database (1-64).",
        ),
    ] = 4,
) -> None:
    """Serve wards over HTTP (push, pull, receipts). TLS is left to a reverse proxy (docs/sync.md)."""
    from ..sync import server
    from ..sync.pgstore import MAX_POOL_SIZE

    if not 1 <= max_body_mb <= 64 * 1024:
        raise UsageError("--max-body-mb must be 1 to 65536")
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise UsageError(f"--pool-size must be 1 to {MAX_POOL_SIZE} connections per worker")
    timeouts = server.BodyTimeouts(body_idle_timeout, body_min_rate)  # refused in one line when out of range
    with session(data_dir) as s:
        server.serve(
            s, host, port, max_body=max_body_mb * 1024 * 1024, timeouts=timeouts, pool_size=pool_size
        )


@hub_app.command("status")
def hub_status(data_dir: HubDirOption, as_json: JsonOption = False) -> None:
    """Devices, last bundle and receipt per device, gaps held, forks, bundles refused, conflicts, open queries."""
    from rich.markup import escape

    from .. import protocol
    from ..sync import hub

    with session(data_dir) as s:
        st = hub.status(s)
    if as_json:
        print_json(st)
        return
    for d in st["devices"]:
        flag = f" [bold red]{d['status'].upper()}: {d['flag']}[/]" if d["status"] != "active" else ""
        console.print(
            f"{d['site']} {d['device']} ({d['name']}): events 1-{d['events']}, last bundle "
            f"{d['last_bundle']} at {d['last_bundle_at'] or '—'}{flag}",
            highlight=False,
        )
    for g in st["gaps_held"]:
        console.print(f"held (gap): {g['device']} bundle {g['bundle_seq']}: {g['detail']}", highlight=False)
    for f in st["forks"]:
        console.print(
            f"[bold red]FORK[/] {f['device']} bundle {f['bundle_seq']}: {f['detail']}", highlight=False
        )
    for c in st["clashes"]:
        console.print(
            f"[bold red]CLASH[/] {c['device']} bundle {c['bundle_seq']} held: {c['detail']}", highlight=False
        )
    for h in st["held_rules"]:
        console.print(
            f"[bold red]HELD ({h['reason']})[/] {h['device']} bundle {h['bundle_seq']}: {escape(h['detail'])}",
            highlight=False,
        )
    for r in st["refused"]:
        console.print(
            f"[bold red]REFUSED[/] {r['device']} {r['file']} at {r['at']}: {escape(r['reason'])}",
            highlight=False,
        )
    for pc in st["protocol_conflicts"]:
        console.print(f"[bold red]PROTOCOL CONFLICT[/] {escape(protocol.conflict_line(pc))}", highlight=False)
    console.print(
        f"conflicts: {st['conflicts']}; conflicting logger readings: {st['reading_conflicts']}; "
        f"open queries: {st['open_queries']}",
        highlight=False,
    )


@hub_app.command("records")
def hub_records(
    data_dir: HubDirOption,
    form: Annotated[
        str | None, typer.Option("--form", help="Only records of this form, e.g. vitals.")
    ] = None,
    participant: Annotated[
        str | None, typer.Option("--participant", help="Only this participant's records, e.g. WUH01-001.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many records.")] = 1000,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """The wards' records as the hub holds them (current values), oldest first: on SQLCipher or PostgreSQL alike."""
    from rich.markup import escape
    from rich.table import Table

    from ..sync import hub
    from ..text import for_terminal

    def shown(value: object) -> str:  # ward input: no terminal controls, no rich markup
        return escape(for_terminal(str(value)))

    if not 0 < limit <= hub.MAX_LISTED or offset < 0:
        raise UsageError(f"--limit: 1 to {hub.MAX_LISTED} records at a time (--offset pages on), not {limit}")
    with session(data_dir) as s:
        rows = hub.records_list(s, form=form, participant=participant, limit=limit, offset=offset)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No records.")
        return
    table = Table("record", "form", "subject", "by", "at", "version", "values")
    for r in rows:
        values = ", ".join(f"{k}={v}" for k, v in r["data"].items())
        table.add_row(
            *(shown(r[c] or "") for c in ("event_id", "form", "subject", "created_by", "created_at")),
            str(r["version"]),
            shown(values[:200]),
        )
    console.print(table, highlight=False)


@hub_app.command("conflicts")
def hub_conflicts(data_dir: HubDirOption, as_json: JsonOption = False) -> None:
    """Concurrent amendments of one field from two devices (the later by HLC is shown), then
    bundles held unmerged because two laptops allocated the same participant id (`hub status
    --json` lists those under "clashes"), then bundles held by a rule (a kit given twice: the kit,
    both participants, records and devices; "held_rules" in `hub status --json`), then logger
    readings two devices' files disagree on."""
    from rich.markup import escape

    from ..coldchain.loggers import iso_z
    from ..sync import hub

    with session(data_dir) as s:
        rows = hub.conflicts(s)
        clashes = hub.clashes(s)
        held = hub.held_rules(s)
        readings = hub.reading_conflicts(s)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No conflicting amendments.")
    for r in rows:
        console.print(
            f"{r['target_event']} {r['field']}: {r['first_event']} → {r['first_value']} vs "
            f"{r['second_event']} → {r['second_value']}",
            highlight=False,
        )
    for c in clashes:
        console.print(
            f"[bold red]CLASH[/] {c['device']} bundle {c['bundle_seq']} held: {c['detail']}", highlight=False
        )
    for h in held:
        console.print(
            f"[bold red]HELD ({h['reason']})[/] {h['device']} bundle {h['bundle_seq']}: {escape(h['detail'])}",
            highlight=False,
        )
    for r in readings:
        console.print(
            f"logger readings disagree: unit {r['unit_id']} at {iso_z(r['t'])}: {r['kept_temp_c']} °C "
            f"(sha256:{r['kept_sha256'][:12]}…, indexed) vs {r['temp_c']} °C (sha256:{r['sha256'][:12]}…)",
            highlight=False,
        )


ToSiteOption = Annotated[
    str, typer.Option("--site", help="The site it goes to, in the next hub bundle for that site.")
]


def _to_site(data_dir: Path, send: Callable[[Session, ModuleType], Event]) -> Event:
    """Record one hub message to a site (a query, a DSMG decision, an account change) and return its event.

    The registry is imported here, not at module level: the CLI's start-up
    stays off sync's imports until a hub command runs.
    """
    from ..sync import registry

    with session(data_dir) as s:
        return send(s, registry)


@hub_app.command("raise-query")
def raise_query(
    data_dir: HubDirOption,
    site: ToSiteOption,
    record: Annotated[str, typer.Option("--record", help="Event id of the record.")],
    field: Annotated[str, typer.Option("--field", help="The field in question.")],
    question: Annotated[str, typer.Option("--question", help="What the coordinator asks.")],
) -> None:
    """Ask a site about one field of a record; it travels in the next hub bundle."""
    from ..sync import hub

    def raise_it(s: Session, registry: ModuleType) -> Event:
        with hub.ledger_store(
            s
        ) as wards:  # the record is where the wards' events are: the file, or PostgreSQL
            return registry.raise_query(s, site, record, field, question, wards=wards)

    e = _to_site(data_dir, raise_it)
    console.print(f"Query {e.id} raised for {site}.", highlight=False)


@hub_app.command("close-query")
def close_query(
    query_id: Annotated[str, typer.Argument(help="The query id.")],
    data_dir: HubDirOption,
    note: Annotated[str, typer.Option("--note", help="Why the answer is accepted.")] = "",
) -> None:
    """Close an answered query at the hub."""
    from ..sync import registry

    with session(data_dir) as s:
        registry.close_query(s, query_id, note)
    console.print(f"Query {query_id} closed.", highlight=False)


@hub_app.command("decide")
def decide(
    data_dir: HubDirOption,
    site: ToSiteOption,
    decision: Annotated[str, typer.Option("--decision", help="Short title, e.g. 'continue enrolment'.")],
    detail: Annotated[str, typer.Option("--detail", help="The decision in full.")] = "",
) -> None:
    """Record a DSMG decision for a site; it travels in the next hub bundle."""
    e = _to_site(data_dir, lambda s, registry: registry.send_decision(s, site, decision, detail))
    console.print(f"Decision {e.id} for {site} recorded.", highlight=False)


@hub_app.command("user-change")
def user_change(
    data_dir: HubDirOption,
    site: ToSiteOption,
    user: Annotated[str, typer.Option("--user", help="The ward user name.")],
    action: Annotated[str, typer.Option("--action", help="deactivate, lock or unlock.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")],
) -> None:
    """Deactivate, lock or unlock a ward account; applied when the ward imports the next hub bundle."""
    e = _to_site(data_dir, lambda s, registry: registry.send_user_change(s, site, user, action, reason))
    console.print(f"User change {e.id} ({action} {user} at {site}) recorded.", highlight=False)


# -- audit verify-bundle ------------------------------------------------------------


def verify_bundle(
    file: Annotated[Path, typer.Argument(help="The bundle (.tar.age) with its .minisig beside it.")],
    device_card: Annotated[Path, typer.Option("--device-card", help="The signing device's card.")],
    identity: Annotated[Path, typer.Option("--identity", help="An age identity file (AGE-SECRET-KEY-1...).")],
    as_json: JsonOption = False,
) -> None:
    """Verify a bundle standalone, as an auditor: signatures, archive, checksums, chain, photos."""
    from ..sync import bundle
    from ..sync.cards import Card
    from ..sync.hub import read_sig

    card = Card.read(device_card)
    try:
        ids = [
            ln.strip()
            for ln in identity.read_text("utf-8").splitlines()
            if ln.strip().startswith("AGE-SECRET-KEY-")
        ]
    except OSError as exc:
        raise UsageError(f"cannot read {identity}: {exc.strerror}") from None
    if not ids:
        raise UsageError(f"{identity} holds no age identity (AGE-SECRET-KEY-1... line)")
    sig = read_sig(file)  # the bundle itself is verified as a stream from its file, never read whole
    signer = bundle.Signer(card.device, card.site, card.sign_public, card.key_id)
    try:
        v = bundle.verify(file, sig, lambda k: signer if k == card.key_id else None, ids, file.name)
    except Refused as exc:
        raise VerificationFailed(f"bundle verification failed: {exc}") from None
    v.close()
    if as_json:
        print_json(
            {"ok": True, "manifest": v.manifest, "manifest_sha256": v.manifest_sha, "report": v.report}
        )
        return
    for line in v.report:
        console.print(f"[green]ok[/] {line}", highlight=False)
    console.print(
        f"[green]VERIFIED[/] {file.name}: site {v.manifest['site']}, device {v.device}, bundle "
        f"{v.bundle_seq}, manifest sha256 {v.manifest_sha}",
        highlight=False,
    )


def register(root: typer.Typer, audit_app: typer.Typer) -> None:
    root.add_typer(device_app, name="device")
    root.add_typer(sync_app, name="sync")
    root.add_typer(hub_app, name="hub")
    audit_app.command("verify-bundle")(verify_bundle)
