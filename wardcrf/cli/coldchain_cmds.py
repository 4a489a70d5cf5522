"""`wardcrf coldchain ...` and `wardcrf audit handovers`: the cold chain from the terminal.

Check before you sign: every rule of a receipt or handover runs first
(`services.preflight`, nothing kept), so a refusal never follows the
passwords. Signatures: the signed-in user signs with the password they logged in with
(WARDCRF_PASSWORD or a prompt); the other party in the room signs with theirs
(WARDCRF_PASSWORD_<USER>, e.g. WARDCRF_PASSWORD_CLINICIAN, or a prompt). With
--sign-later, or when no password can be asked for, the step is saved and the
missing signature is listed: that party signs later with `coldchain sign`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..coldchain import reports, services
from ..coldchain.loggers import parse_when
from ..errors import Refused, UsageError, VerificationFailed
from ..site import Session
from .common import (
    DataDirOption,
    JsonOption,
    ask_password,
    console,
    finite_number,
    in_place,
    print_json,
    session,
)

app = typer.Typer(
    help="Cold chain: units, lots and kits, receipts, handovers, logger files, custody.", no_args_is_help=True
)

KitOption = Annotated[list[str], typer.Option("--kit", "-k", help="Kit id (repeat; scanner input is fine).")]
PhotoOption = Annotated[
    list[str] | None,
    typer.Option(
        "--photo", help="Photo of the signed sheet: @path/to/file.jpg, a tray id or sha256:<hex> (repeat)."
    ),
]
SignLaterOption = Annotated[
    bool, typer.Option("--sign-later", help="Save now; the other party signs later with `coldchain sign`.")
]


def _passwords(s: Session, users: list[str | None], sign_later: bool) -> dict[str, str]:
    """Passwords of the in-system parties present: own login password, others' from env or prompt."""
    out: dict[str, str] = {}
    for user in users:
        if not user or user in out:
            continue
        if user == s.user:
            out[user] = ask_password("Your password, to sign", env="WARDCRF_PASSWORD")
            continue
        if sign_later:
            continue
        env = "WARDCRF_PASSWORD_" + user.upper().replace("-", "_").replace(".", "_")
        if os.environ.get(env) is None and not sys.stdin.isatty():
            continue  # nobody to ask: the signature stays pending
        out[user] = ask_password(f"Password of {user}, to sign", env=env)
    return out


def _report(rec: services.Recorded, what: str) -> None:
    console.print(f"Recorded {what} — event {rec.event.id}")
    for w in rec.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    for p in rec.pending_signatures:
        console.print(
            f"[yellow]awaiting signature:[/] {p} — `wardcrf coldchain sign {rec.event.id}`", highlight=False
        )


def _signed_step(
    data_dir: Path | None,
    kind: str,
    kits: list[str],
    record: Callable[..., services.Recorded],
    parties: Callable[[Session], list[str | None]],
    sign_later: bool,
    photos: list[str] | None,
    condition: str | None,
    **fields: Any,
) -> None:
    """Record a custody step (`kind`: receipt, handover) of `kits` that its parties sign; say what was recorded.

    Every custody step carries its kits, the photos of the sheet a party without an
    account signed, and a condition note: they are passed on to `record` here, once;
    `fields` are the rest of the step, in `record`'s keyword names. The one owner of
    the order this module promises: every rule of the step is checked first
    (`services.preflight`, nothing kept), then the `parties` present (given the
    signed-in session) are asked for their passwords, then the step is saved with
    their signatures; a refusal never follows a password.
    """
    step: dict[str, Any] = dict(kits=kits, photos=photos or [], condition=condition, **fields)
    with session(data_dir) as s:
        services.preflight(s, record, **step)  # check before anyone signs
        rec = record(s, **step, passwords=_passwords(s, parties(s), sign_later))
    _report(rec, f"{kind} of {len(kits)} kit(s)")


@app.command("add-unit")
def add_unit(
    unit: Annotated[str, typer.Argument(help="Unit id, e.g. FRZ-1.")],
    name: Annotated[str, typer.Option("--name", help="What it is, e.g. '-20 °C freezer'.")],
    location: Annotated[str, typer.Option("--location", help="Where it stands.")],
    low: Annotated[
        float | None,
        typer.Option("--low", parser=finite_number, help="Lowest allowed °C (default: protocol)."),
    ] = None,
    high: Annotated[
        float | None,
        typer.Option("--high", parser=finite_number, help="Highest allowed °C (default: protocol)."),
    ] = None,
    target: Annotated[
        float | None, typer.Option("--target", parser=finite_number, help="Target °C (default: protocol).")
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="Zone of its logger's clock (default: site).")
    ] = None,
    interval: Annotated[int, typer.Option("--interval", help="Logging interval in minutes.")] = 5,
    product: Annotated[
        str | None,
        typer.Option(
            "--product",
            help="The product it stores (code or name): its range is the default (else the protocol's first).",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a monitored storage unit with its allowed range."""
    with session(data_dir) as s:
        event = services.add_unit(
            s,
            unit,
            name=name,
            location=location,
            low_c=low,
            high_c=high,
            target_c=target,
            zone=zone,
            interval_minutes=interval,
            product=product,
        )
    data = event.body["data"]
    console.print(f"Registered unit {unit} ({data['low_c']} … {data['high_c']} °C) — event {event.id}")


@app.command("add-lot")
def add_lot(
    lot: Annotated[str, typer.Argument(help="Lot number as on the label.")],
    product: Annotated[
        str,
        typer.Option(
            "--product",
            help="The protocol's product, by code or name (one of several: required; the protocol's only one:"
            " any label wording).",
        ),
    ],
    expiry: Annotated[str, typer.Option("--expiry", help="Expiry date, yyyy-mm-dd.")],
    release_ref: Annotated[str, typer.Option("--release-ref", help="Manufacturer's release reference (QP).")],
    quantity: Annotated[int, typer.Option("--quantity", help="Number of kits, checked against the ids.")],
    kit: Annotated[list[str] | None, typer.Option("--kit", "-k", help="Kit id (repeat).")] = None,
    kits_file: Annotated[
        Path | None, typer.Option("--kits-file", help="File of scanned kit ids, one a line.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a lot and its kits."""
    scanned = list(kit or [])
    if kits_file:
        try:
            scanned += [ln for ln in kits_file.read_text("utf-8").splitlines() if ln.strip()]
        except OSError as exc:
            raise UsageError(f"cannot read {kits_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{kits_file} is not UTF-8 text: give a file of kit ids, one a line") from None
    with session(data_dir) as s:
        event = services.add_lot(
            s, lot, product=product, expiry=expiry, release_ref=release_ref, kits=scanned, quantity=quantity
        )
    data = event.body["data"]
    code = f" ({data['product_code']})" if "product_code" in data else ""  # several products: which one
    console.print(f"Registered lot {data['lot']}{code} with {len(data['kits'])} kit(s) — event {event.id}")


@app.command("receive")
def receive(
    shipper: Annotated[str, typer.Option("--shipper", help="Shipper (dry-ice box) id.")],
    kit: KitOption,
    at: Annotated[str, typer.Option("--at", help="Time of receipt, ISO 8601 (site zone if no offset).")],
    dry_ice: Annotated[
        bool, typer.Option("--dry-ice/--no-dry-ice", help="Dry ice still present on arrival.")
    ],
    intact: Annotated[bool, typer.Option("--intact/--damaged", help="Container intact on arrival.")],
    frozen: Annotated[bool, typer.Option("--frozen/--not-frozen", help="Product frozen on arrival.")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Where the kits go: a unit id, or e.g. 'pharmacy' (a custody clock starts there). "
            "Default: the site's storage unit when it has exactly one.",
        ),
    ] = None,
    courier: Annotated[
        str | None, typer.Option("--courier", help="Courier without an account: 'Name, company'.")
    ] = None,
    courier_user: Annotated[
        str | None, typer.Option("--courier-user", help="Courier who has an account here.")
    ] = None,
    received_by: Annotated[str | None, typer.Option("--received-by", help="Receiver (default: you).")] = None,
    logger_serial: Annotated[
        str | None, typer.Option("--logger-serial", help="Shipper's logger serial.")
    ] = None,
    logger_file: Annotated[
        Path | None, typer.Option("--logger-file", help="Shipper's logger export (kept as evidence).")
    ] = None,
    photo: PhotoOption = None,
    condition: Annotated[str | None, typer.Option("--condition", help="Free-text condition note.")] = None,
    sign_later: SignLaterOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Receive a shipment: arrival condition, logger, delivery sheet photo, both signatures."""
    _signed_step(
        data_dir,
        "receipt",
        kit,
        services.receive_shipment,
        lambda s: [courier_user, received_by or s.user],
        sign_later,
        photo,
        condition,
        shipper_id=shipper,
        received_at=at,
        to_location=to,
        delivered_by_external=courier,
        delivered_by_user=courier_user,
        received_by_user=received_by,
        dry_ice=dry_ice,
        container_intact=intact,
        product_frozen=frozen,
        logger_serial=logger_serial,
        logger_file=logger_file,
    )


@app.command("handover")
def handover(
    kit: KitOption,
    at: Annotated[str, typer.Option("--at", help="Time of the handover, ISO 8601 (site zone if no offset).")],
    from_location: Annotated[
        str, typer.Option("--from", help="Where the kits are: unit id, 'pharmacy', ...")
    ],
    to_location: Annotated[
        str, typer.Option("--to", help="Where they go: unit id, 'bedside:<participant>', ...")
    ],
    from_user: Annotated[
        str | None, typer.Option("--from-user", help="Handing over (has an account).")
    ] = None,
    from_external: Annotated[
        str | None, typer.Option("--from-external", help="Handing over, no account: name.")
    ] = None,
    to_user: Annotated[str | None, typer.Option("--to-user", help="Receiving (has an account).")] = None,
    to_external: Annotated[
        str | None, typer.Option("--to-external", help="Receiving, no account: name.")
    ] = None,
    condition: Annotated[str | None, typer.Option("--condition", help="Condition of the kits.")] = None,
    photo: PhotoOption = None,
    sign_later: SignLaterOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Record a custody change, signed by each party with an account."""
    _signed_step(
        data_dir,
        "handover",
        kit,
        services.record_handover,
        lambda s: [from_user, to_user],
        sign_later,
        photo,
        condition,
        at=at,
        from_location=from_location,
        to_location=to_location,
        from_user=from_user,
        from_external=from_external,
        to_user=to_user,
        to_external=to_external,
    )


@app.command("sign")
def sign(
    event_id: Annotated[str, typer.Argument(help="The receipt, handover or preparation event id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Sign a receipt or handover as the party you are in it, or your preparation at the pharmacy again."""
    with session(data_dir) as s:
        event = services.sign_transfer(s, event_id, ask_password("Your password, to sign"))
    console.print(f"Signed {event_id} — event {event.id}")


@app.command("import-logger")
def import_logger(
    file: Annotated[Path, typer.Argument(help="Logger export: CSV, Fridge-tag 2 L .txt or Elitech .txt.")],
    unit: Annotated[str, typer.Option("--unit", help="The storage unit the logger monitors.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, fridgetag or elitech (default: detect).")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a logger file (all or nothing), keep it as evidence, report excursions and gaps."""
    with session(data_dir) as s:
        result = services.import_logger(s, file, unit, fmt=fmt)
    body = result.summary
    if as_json:
        print_json({"event": result.event.id, "new_readings": result.new_readings, **body})
        return
    sm = body["summary"]
    console.print(
        f"Imported {sm['readings']} readings ({result.new_readings} new) from {file.name} "
        f"[{body['format']}, zone {body['zone']}] into {unit} — event {result.event.id}",
        highlight=False,
    )
    console.print(
        f"  {sm['first']} … {sm['last']}; min {sm['min_c']} °C, max {sm['max_c']} °C, "
        f"mean {sm['mean_c']} °C, MKT {sm['mkt_c']} °C; sha256 {body['sha256']}",
        highlight=False,
    )
    for x in body["excursions"]:
        console.print(
            f"  [red]excursion[/] {x['start']} … {x['end']} ({x['min_c']} … {x['max_c']} °C)"
            + (" still open" if x["open"] else ""),
            highlight=False,
        )
    for g in body["gaps"]:
        console.print(f"  [yellow]unmonitored[/] {g['start']} … {g['end']}", highlight=False)


@app.command("reading")
def reading(
    unit: Annotated[str, typer.Argument(help="Storage unit id.")],
    at: Annotated[str, typer.Option("--at", help="Time read, ISO 8601 (unit zone if no offset).")],
    temp: Annotated[float, typer.Option("--temp", parser=finite_number, help="Temperature in °C.")],
    data_dir: DataDirOption = None,
) -> None:
    """Record a manual temperature reading of a unit."""
    with session(data_dir) as s:
        event = services.record_reading(s, unit, at=at, temp_c=temp)
    console.print(f"Recorded {temp} °C in {unit} — event {event.id}")


@app.command("thaw")
def thaw(
    kit: Annotated[str, typer.Argument(help="Kit id.")],
    start: Annotated[str, typer.Option("--start", help="Thaw start, ISO 8601.")],
    end: Annotated[str, typer.Option("--end", help="Thaw and reconstitution end, ISO 8601.")],
    reconstitution: Annotated[
        str | None, typer.Option("--reconstitution", help="How it was reconstituted.")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Record thawing and reconstitution at the bedside (by you)."""
    with session(data_dir) as s:
        event = services.record_thaw(s, kit, start=start, end=end, reconstitution=reconstitution)
    console.print(f"Recorded thaw of {event.body['data']['kit_id']} — event {event.id}")


@app.command("prepare")
def prepare(
    kit: Annotated[str, typer.Argument(help="Kit id (scanner input is fine).")],
    start: Annotated[str, typer.Option("--start", help="Preparation start, ISO 8601.")],
    end: Annotated[str, typer.Option("--end", help="Preparation end, ISO 8601.")],
    values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A field the protocol asks with the step, name=value (repeat), e.g. --set volume_ml=250.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record the steps the protocol does at the pharmacy (pharmacist), signed with your password.

    Every rule is checked first; only then is your password asked for (WARDCRF_PASSWORD or a prompt).
    """
    from .form_cmds import parse_pairs

    fields = parse_pairs(values)
    with session(data_dir) as s:
        services.record_preparation(s, kit, start=start, end=end, values=fields, dry_run=True)
        rec = services.record_preparation(
            s,
            kit,
            start=start,
            end=end,
            values=fields,
            password=ask_password("Your password, to sign", env="WARDCRF_PASSWORD"),
        )
    d = rec.event.body["data"]
    if as_json:
        print_json({"event": rec.event.id, **d, "warnings": rec.warnings})
        return
    use_by = f"; use by {d['use_by']}" if d.get("use_by") else ""
    console.print(
        f"Recorded preparation of {d['kit_id']} ({d['product']}: {', '.join(d['steps'])}) at the pharmacy, "
        f"signed by {d['by']}{use_by} — event {rec.event.id}",
        highlight=False,
    )
    for w in rec.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


@app.command("disposition")
def disposition(
    excursion: Annotated[str, typer.Argument(help="Excursion id (see `coldchain excursions`).")],
    decision: Annotated[str, typer.Option("--decision", help="release or discard.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (stability data, sponsor advice, ...).")],
    kit: Annotated[
        list[str] | None, typer.Option("--kit", "-k", help="Only these kits (default: all awaiting).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Release or discard the kits an excursion quarantined (pharmacist or investigator)."""
    with session(data_dir) as s:
        event = services.record_disposition(s, excursion, decision=decision, reason=reason, kits=kit)
    console.print(f"Recorded {decision} for excursion {excursion} — event {event.id}")


@app.command("custody")
def custody_cmd(
    kit_or_lot: Annotated[str, typer.Argument(help="A kit id or a lot number.")],
    at: Annotated[
        str | None, typer.Option("--at", help="Check as of this time (e.g. a planned dose).")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show each kit's chain: handovers, who, where, when, temperatures, photos. Exit 1 if broken."""
    # A PostgreSQL hub's database read for this kit's (or lot's) rows only (`in_place`), never copied.
    with session(data_dir) as signed_in, in_place(signed_in) as s:
        when = parse_when(at, s.ctx.zone) if at else None
        chains = reports.custody_of(s, kit_or_lot, when=when)
    if len(chains) == 1 and chains[0].lot is None and not chains[0].links:
        # Nothing of that id here: a refusal (exit 1, one line), not a chain report.
        raise Refused(f"{chains[0].problems[0]}, and no lot has that number")
    if as_json:
        print_json([c.as_dict() for c in chains])
    else:
        for c in chains:
            mark = "[green]complete[/]" if c.complete else "[red]BROKEN[/]"
            console.print(f"[bold]kit {c.kit}[/] (lot {c.lot or '—'}): {mark}")
            for ln in c.links:
                d = ln.detail
                flag = "" if ln.ok else " [red]✗[/]"
                if ln.kind == "stay":
                    temps = d.get("temperatures")
                    t = (
                        f", {temps['min_c']} … {temps['max_c']} °C, MKT {temps['mkt_c']} °C over {temps['readings']} readings"
                        if temps
                        else ""
                    )
                    console.print(
                        f"    stay at {d['location']} {d['start']} … {d['end']}{t}{flag}", highlight=False
                    )
                elif ln.kind == "thaw":
                    console.print(f"  thaw {d['start']} … {d['end']} — {ln.what}", highlight=False)
                elif ln.kind == "preparation":
                    use_by = f", use by {d['use_by']}" if d.get("use_by") else ""
                    shown = ", ".join(
                        f"{k}={v['value']} {v['unit']}" if isinstance(v, dict) else f"{k}={v}"
                        for k, v in (d.get("values") or {}).items()
                    )
                    console.print(
                        f"  preparation {d['event_id']} {d['start']} … {d['end']}: {ln.what}"
                        f" ({', '.join(d.get('steps') or [])}{'; ' + shown if shown else ''}){use_by}",
                        highlight=False,
                    )
                else:
                    console.print(
                        f"  {ln.kind} {d['event_id']} {d['at']}: {ln.what} "
                        f"({d['from_location']} → {d['to_location']}){flag}",
                        highlight=False,
                    )
                    for sg in d["signatures"]:
                        console.print(
                            f"      signed {sg['meaning']} by {sg['name']} at {sg['signed_at']}: "
                            f"{sg['state']}",
                            highlight=False,
                        )
                    for ph in d["photos"]:
                        console.print(f"      photo sha256:{ph['sha256']}: {ph['state']}", highlight=False)
            for p in c.problems:
                console.print(f"  [red]broken:[/] {p}", highlight=False)
    broken = [c for c in chains if not c.complete]
    if broken:
        raise VerificationFailed(f"custody incomplete for {len(broken)} kit(s): {broken[0].problems[0]}")


@app.command("excursions")
def excursions_cmd(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List excursions with affected kits and their dispositions."""
    from wardcrf.sync import hubview

    # A PostgreSQL hub's database queried in place, the hub's own events (a disposition made here) first.
    with session(data_dir) as s, hubview.direct(s) as held:
        rows = reports.excursions(s, held)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "where", "span (UTC)", "min…max °C", "lots", "kits awaiting", "dispositions")
    for x in rows:
        decided = [k["disposition"]["decision"] for k in x["kits"] if k["disposition"]]
        done = ", ".join(f"{decided.count(d)} {d}d" for d in ("release", "discard") if d in decided)
        table.add_row(
            x["id"],
            x["unit"] or f"receipt {x['receipt']}",
            f"{x['start']} … {x['end']} ({x['duration_min']} min){' open' if x['open'] else ''}",
            f"{x['min_c']} … {x['max_c']}",
            ", ".join(x["lots"]) + (f" ({x['product']})" if x["product"] else "") or "—",
            ", ".join(x["awaiting_disposition"]) or "—",
            done or "—",
        )
    console.print(table)


@app.command("status")
def status_cmd(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Units, last reading, open excursions, quarantined kits."""
    # A PostgreSQL hub's database queried where it is (its cold-chain tables), never copied.
    with session(data_dir) as signed_in, in_place(signed_in) as s:
        st = reports.status(s)
    if as_json:
        print_json(st)
        return
    table = Table("unit", "range °C", "last reading", "kits inside")
    for u in st["units"]:
        last = u["last_reading"]
        table.add_row(
            f"{u['unit']} ({u['name']})",
            f"{u['range_c'][0]} … {u['range_c'][1]}",
            f"{last['temp_c']} °C at {last['at']} ({last['source']})" if last else "none",
            ", ".join(u["kits"]) or "—",
        )
    console.print(table)
    console.print(f"Range from: {st['range_source']}")
    console.print(
        f"Open excursions: {len(st['open_excursions'])}; quarantined kits: "
        + (", ".join(q["kit"] for q in st["quarantined_kits"]) or "none")
    )
    if st["outside_units"]:
        clocks = Table("kit", "where", "since (UTC)", "limit", "time left", title="Outside a monitored unit")
        for c in st["outside_units"]:
            left = (
                f"[red]over by {-c['minutes_left']} min: can no longer be dosed[/]"
                if c["over_limit"]
                else f"{c['minutes_left']} min (until {c['deadline_local']})"
            )
            clocks.add_row(c["kit"], c["location"], c["since"], f"{c['allowed_min']} min", left)
        console.print(clocks)


def audit_handovers(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every receipt and handover: parties, signature states, photo hashes. Exit 1 if any fails."""
    # A PostgreSQL hub's database queried where it is (transfers, signatures, logger files), never copied.
    with session(data_dir) as signed_in, in_place(signed_in) as s:
        report = reports.handover_audit(s)
    if as_json:
        print_json(report)
    else:
        for t in report["transfers"]:
            mark = "[green]ok[/]" if t["ok"] else "[red]FAILED[/]"
            console.print(
                f"{mark} {t['kind']} {t['event_id']} {t['at']}: {t['from']['party']} → {t['to']['party']} "
                f"({t['from']['location']} → {t['to']['location']}) kits {', '.join(t['kits'])}",
                highlight=False,
            )
            for sg in t["signatures"]:
                console.print(
                    f"    signature {sg['meaning']} by {sg['name']}: {sg['state']}", highlight=False
                )
            for ph in t["photos"]:
                console.print(f"    photo sha256:{ph['sha256']}: {ph['state']}", highlight=False)
            if t["logger_file"]:
                console.print(
                    f"    logger file sha256:{t['logger_file']['sha256']}: {t['logger_file']['state']}",
                    highlight=False,
                )
            for p in t["problems"]:
                console.print(f"    [red]{p}[/]", highlight=False)
        for f in report["logger_files"]:
            console.print(
                f"{'[green]ok[/]' if f['state'] == 'ok' else '[red]FAILED[/]'} logger file {f['name']} "
                f"({f['unit_id']}) sha256:{f['sha256']}: {f['state']}",
                highlight=False,
            )
    if not report["ok"]:
        raise VerificationFailed("audit handovers failed: a signature, photo or logger file does not check")


def register(root: typer.Typer, audit_app: typer.Typer) -> None:
    root.add_typer(app, name="coldchain")
    audit_app.command("handovers")(audit_handovers)
