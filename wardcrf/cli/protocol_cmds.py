"""`wardcrf protocol ...`: load a protocol version, show the active one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import amounts, protocol, protocols
from .common import DataDirOption, JsonOption, console, print_json, session

app = typer.Typer(
    help="Load protocol files (the trial as data) and show what is loaded.", no_args_is_help=True
)


@app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="A protocol TOML file (see docs/protocol.md).")],
    data_dir: DataDirOption = None,
) -> None:
    """Validate a protocol file and load it as the site's new active version (admin, investigator).

    A format-2 file that re-encodes a loaded version is recorded beside it for the engine.
    """
    from ..engine import loading

    read = loading.read_file(file)
    if not isinstance(read, protocol.Protocol):
        with session(data_dir) as s:
            event = loading.load(s, read)
        console.print(
            f"Recorded {read.id} {read.version} format 2 (sha256 {read.sha256[:16]}…) as the re-encoding "
            f"of the loaded version — event {event.id}; records are still captured under that version.",
            highlight=False,
        )
        return
    parsed = read
    with session(data_dir) as s:
        event = protocol.load(s, parsed)
    console.print(
        f"Loaded {parsed.id} {parsed.version} (sha256 {parsed.sha256[:16]}…) — event {event.id}; "
        "new participants are captured under it; enrolled ones stay on their version until "
        "`wardcrf protocol apply` moves them.",
        highlight=False,
    )


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="A protocol TOML file, format 1 or 2 (see docs/protocol.md).")],
    as_json: JsonOption = False,
) -> None:
    """Validate a protocol file of either format without a site: exit 0 valid, 1 with every problem named."""
    from ..engine import loading

    read = loading.read_file(file)
    fmt = 1 if isinstance(read, protocol.Protocol) else 2
    if not isinstance(read, protocol.Protocol):
        from ..engine import ward

        ward.of(read, file.name)  # as the ward reads it: the fields (ranges, choices) and [[warnings]]
    info: dict[str, Any] = {
        "file": file.name,
        "format": fmt,
        "id": read.id,
        "version": read.version,
        "sha256": read.sha256,
        "valid": True,
    }
    if isinstance(read, protocol.Protocol):
        info["forms"] = len(read.forms)
    else:
        info["forms"] = len(read.data.get("forms", {}))
        info["arms"] = [a.code for a in read.arms]
        info["regimens"] = list(read.regimens)
        info["criteria"] = [c["code"] for c in read.data.get("criteria", ())]
    if as_json:
        print_json(info)
        return
    extra = f", arms {', '.join(info['arms'])}" if fmt == 2 else ""
    console.print(
        f"{file.name}: valid format-{fmt} protocol {read.id} {read.version}, {info['forms']} forms{extra}",
        highlight=False,
    )


_DIFF_ARG_HELP = (
    "A protocol file (either format), a shipped protocol's name (palm, palm007), "
    "or a version loaded on this site as ID@VERSION (e.g. PALM@1.0)."
)


@app.command("diff")
def diff(
    old: Annotated[str, typer.Argument(help="The old version. " + _DIFF_ARG_HELP)],
    new: Annotated[str, typer.Argument(help="The new version. " + _DIFF_ARG_HELP)],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """What changed between two protocol versions: forms, fields, ranges, schedule, arms, regimens,
    eligibility, gates, endpoints. Both are validated first; exit 0 with the differences (or none)."""
    from ..engine import diff as protocol_diff

    sides = _diff_inputs([old, new], data_dir)
    (old_source, old_side), (new_source, new_side) = sides
    result = protocol_diff.compare(old_source, new_source, old_side, new_side)
    if as_json:
        print_json(result.to_json())
        return
    for line in result.lines():
        console.print(line, highlight=False, markup=False)


def _diff_inputs(specs: list[str], data_dir: Path | None) -> list[tuple[str, Any]]:
    """Each argument read and validated: a file, a shipped name, or ID@VERSION loaded on the site
    (signed in once for both, `record.read`). Files are read before anyone is asked to sign in."""
    from ..engine import diff as protocol_diff
    from ..engine import loading
    from ..errors import UsageError

    out: list[tuple[str, Any] | None] = []
    loaded: list[tuple[int, str, str]] = []
    for i, spec in enumerate(specs):
        if not spec.strip():
            raise UsageError("an empty protocol argument: give a file, a shipped name or ID@VERSION")
        path = Path(spec)
        if "@" in spec and not path.exists():
            pid, _, ver = spec.partition("@")
            if not pid or not ver:
                raise UsageError(f"{spec!r}: a loaded version is written ID@VERSION (e.g. PALM@1.0)")
            loaded.append((i, pid, ver))
            out.append(None)
            continue
        read = loading.read_named(path)
        if not isinstance(read, protocol.Protocol):
            # the forms as the ward reads them: ranges, choices, patterns (what `protocol load` checks)
            protocol.forms_of(read.source, path.name)
        out.append(protocol_diff.side_of(read, path.name))
    if loaded:
        with session(data_dir) as s:
            s.require("record.read", what="read the protocol")
            for i, pid, ver in loaded:
                p = protocol.loaded_version(s.store, pid, ver)
                out[i] = protocol_diff.side_of(p, f"{pid}@{ver} loaded")
    return [o for o in out if o is not None]


@app.command("apply")
def apply(
    participant: Annotated[str, typer.Argument(help="An enrolled participant, e.g. WUH01-001.")],
    version: Annotated[
        str, typer.Argument(help="A newer loaded version of their protocol, e.g. 1.1 (or ID@VERSION).")
    ],
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why (required): e.g. the amendment's approval and the re-consent."),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move an enrolled participant to a newer protocol version (investigator), with a reason.

    They stay on the version they were enrolled under until this is done; their records keep the
    version each was captured under. `wardcrf protocol diff` shows what changes for them.
    """
    from ..workflow import amendments

    amendments.clean_reason(reason)  # before anyone is asked to sign in
    with session(data_dir) as s:
        event = amendments.apply(s, participant, version, reason)
    b = event.body
    if as_json:
        print_json({"event": event.id, **b, "reason": event.reason})
        return
    console.print(
        f"{b['participant']}: {b['protocol_id']} {b['from_version']} -> {b['to_version']} — event {event.id}; "
        "their new records are captured under it.",
        highlight=False,
    )


@app.command("show")
def show(
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    lang: Annotated[str, typer.Option("--lang", help="Language of labels: en or zh.")] = "en",
) -> None:
    """Show the active protocol and every version loaded on this site."""
    with session(data_dir) as s:
        s.require("record.read", what="read the protocol")
        p = protocol.active(s.store)
        versions = protocol.loaded_versions(s.store)
    if p.engine is not None:
        _show_format_2(p, versions, as_json, lang)
        return
    key = protocols.format1_vocabulary()["keys"]  # format 1's own spelling of its keys
    info: dict[str, Any] = {
        "id": p.id,
        "version": p.version,
        "title": protocol.tr(p.title, lang),
        "sha256": p.sha256,
        "registry": list(p.registry),
        "languages": list(p.languages),
        "eligibility": {
            "age_min": p.eligibility.age_min,
            "age_max": p.eligibility.age_max,
            key["confirmation_required"]: p.eligibility.confirmation_required,
            "severity": list(p.eligibility.severities),
        },
        "schedule": {
            "doses": p.schedule.doses,
            key["dose_amount"]: p.schedule.dose_amount,
            "time": p.schedule.time.strftime("%H:%M"),
            "zone": p.schedule.zone,
            "window_minutes": p.schedule.window_minutes,
            "volume_ml": p.schedule.volume_ml,
            "duration_minutes": p.schedule.duration_minutes,
            "device": p.schedule.device,
            "route": p.schedule.route,
            "diluent": p.schedule.diluent,
            key["pre_dose_check_required"]: p.schedule.pre_dose_check_required,
        },
        "sentinel_participants": p.sentinel_participants,
        "consent": {"witnesses": p.consent.witnesses, "min_photos": p.consent.min_photos},
        "product": p.product,
        "forms": list(p.forms),
        "versions": [{k: v for k, v in r.items()} for r in versions],
    }
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{p.id} {p.version}[/] — {info['title']}", highlight=False)
    s_ = p.schedule
    console.print(
        f"Dose {amounts.quantity(s_.dose_amount, s_.dose_unit)} × {s_.doses}, daily at "
        f"{info['schedule']['time']} {s_.zone} ±{s_.window_minutes} min; {s_.volume_ml:g} ml over "
        f"{s_.duration_minutes} min, {s_.device}, {s_.route}",
        highlight=False,
    )
    confirmed = (
        f"{protocols.format1_vocabulary()['confirmation']['short']}, "
        if p.eligibility.confirmation_required
        else ""
    )
    console.print(
        f"Eligibility: age {p.eligibility.age_min}–{p.eligibility.age_max}, {confirmed}"
        f"{' or '.join(p.eligibility.severities)}; sentinel participants: {p.sentinel_participants}"
    )
    console.print(f"Forms: {', '.join(p.forms)}")
    _print_versions(versions)


def _print_versions(versions: list[dict[str, Any]]) -> None:
    """The site's loaded versions (either format), newest last, the active one marked."""
    table = Table("protocol", "version", "sha256", "loaded", "event", "active")
    for r in versions:
        table.add_row(
            r["protocol_id"],
            r["version"],
            r["sha256"][:16] + "…",
            r["loaded_at"],
            r["loaded_event"],
            "yes" if r["active"] else "",
        )
    console.print(table)


def _dose_text(adm: Any) -> str:
    d = adm.dose
    if d.fixed is not None:
        return amounts.quantity(d.fixed, d.unit)
    top = f" (max {amounts.shown(d.max)})" if d.max is not None else ""
    if d.per_kg is not None:
        return f"{amounts.quantity(d.per_kg, d.unit)}/kg{top}"
    return f"{d.unit} by weight band{top}"


def _schedule_text(adm: Any) -> str:
    sc = adm.schedule
    count = f"{sc.count_min}" if sc.count_min == sc.count_max else f"{sc.count_min}-{sc.count_max}"
    times = f" at {', '.join(t.strftime('%H:%M') for t in sc.times)}" if sc.times else ""
    every = "daily" if sc.every_days == 1 else f"every {sc.every_days} days"
    return f"{count} from {sc.anchor} day {sc.first_day}, {every}{times}"


def _show_format_2(p: protocol.Protocol, versions: list[dict[str, Any]], as_json: bool, lang: str) -> None:
    """`protocol show` of a format-2 version: what the engine runs (arms, regimens, criteria, gates, forms)."""
    m = p.engine
    assert m is not None
    regimens = {
        code: [
            {
                "administration": a.code,
                "product": a.product,
                "route": a.route,
                "frequency": a.frequency,
                "dose": _dose_text(a),
                "schedule": _schedule_text(a),
                "form": a.record.get("form"),
                **({"when": a.when} if a.when else {}),
            }
            for a in r.administrations
        ]
        for code, r in m.regimens.items()
    }
    info: dict[str, Any] = {
        "id": p.id,
        "version": p.version,
        "format": 2,
        "title": protocol.tr(p.title, lang),
        "sha256": p.sha256,
        "registry": list(p.registry),
        "languages": list(p.languages),
        "arms": [{"code": a.code, "regimens": list(a.regimens)} for a in m.arms],
        "regimens": regimens,
        "criteria": [
            {"code": c["code"], "category": c.get("category", "inclusion")}
            for c in m.data.get("criteria", ())
        ],
        "gates": [
            {"code": g["code"], "kind": g.get("kind", "require"), "before": list(g["before"])}
            for g in m.data.get("gates", ())
        ],
        "consent": {"witnesses": p.consent.witnesses, "min_photos": p.consent.min_photos},
        "forms": list(p.forms),
        "versions": [dict(r) for r in versions],
    }
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{p.id} {p.version}[/] (format 2) — {info['title']}", highlight=False)
    for arm in m.arms:
        console.print(f"Arm {arm.code}:", highlight=False)
        for code in arm.regimens:
            for a in regimens[code]:
                console.print(
                    f"  {code}/{a['administration']}: {a['product']} {a['dose']} {a['route']} ({a['frequency']}), "
                    f"{a['schedule']}; recorded on {a['form']}"
                    + (f"; when {a['when']}" if "when" in a else ""),
                    highlight=False,
                )
    console.print(
        "Criteria: " + ", ".join(f"{c['code']} ({c['category']})" for c in info["criteria"]), highlight=False
    )
    console.print(
        "Gates: "
        + ", ".join(f"{g['code']} ({g['kind']}, before {'/'.join(g['before'])})" for g in info["gates"]),
        highlight=False,
    )
    console.print(f"Forms: {', '.join(p.forms)}", highlight=False)
    _print_versions(versions)
