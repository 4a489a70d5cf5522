"""`wardcrf participant ...` and `wardcrf today`: the ward's view of its participants."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from .. import amounts, workflow
from ..workflow import amendments
from .common import DataDirOption, JsonOption, console, print_json, session

app = typer.Typer(help="Participants: list them, show one in full.", no_args_is_help=True)


def _scientific(x: float) -> str:
    """A cumulative amount in the column the version names (`dose.cumulative`), as every amount is written
    (`amounts.shown`: 4.0e8)."""
    return amounts.shown(x) if x else "0"


def _dose(cumulative: Iterable[Mapping[str, Any]]) -> str:
    """A cumulative dose, per unit (`6200 mg`; `400 mg, 12 mL` for several), 0 for none given."""
    return ", ".join(amounts.quantity(c) for c in cumulative) or "0"


@app.command("list")
def list_(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Every participant with state, doses, deviations, open AEs and sign-off."""
    from .. import protocol
    from ..engine.model import cumulative_column

    with session(data_dir) as s:
        rows = workflow.list_participants(s)
        # products are dosed in mg, mL...: "cumulative dose" per unit, as `show` says, unless the version
        # names its one unit's column (`dose.cumulative`)
        model = protocol.active(s.store).engine
        column = cumulative_column(model) if model is not None else None  # the version's own column name
    if as_json:
        print_json(rows)
        return
    table = Table(
        # a participant id must never be cut to "WUH…" on a narrow ward terminal
        Column("id", no_wrap=True, min_width=max((len(r["id"]) for r in rows), default=2)),
        "status",
        "sex",
        "age",
        "enrolled",
        "doses",
        "next dose",
        "deviations",
        "open AEs",
        column[0] if column else "cumulative dose",
        "sign-off",
    )
    for r in rows:
        nd = r["next_dose"]
        unknown = r.get("notice")  # on a version not loaded here: its schedule is unknown, so it says so
        table.add_row(
            r["id"],
            r["status"],
            r["sex"] or "",
            str(r["age"] or ""),
            r["enrolled_on"] or "",
            f"{r['doses_given']}/{'?' if unknown else r['doses_planned']}",
            Text(unknown)
            if unknown
            else (f"{nd['dose']} {nd['due'][5:16].replace('T', ' ')} {nd['state']}" if nd else ""),
            str(r["deviations"] or ""),
            str(r["open_aes"] or ""),
            _scientific(float(r.get(column[0].replace(" ", "_"), 0.0)))  # type: ignore[arg-type]
            if column and column[0].replace(" ", "_") in r
            else _dose(r.get("cumulative_dose", ())),
            r["signoff"],
        )
    console.print(table)


@app.command("show")
def show(
    participant: Annotated[str, typer.Argument(help="Participant id, e.g. WUH01-001.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """One participant: state, doses given and due, deviations, open AEs, AE forms expected, the cumulative
    dose, sign-off."""
    from .. import sdv

    with session(data_dir) as s:
        info: dict[str, Any] = {**workflow.show(s, participant)}
        info["sdv"] = sdv.overview(s, participant=info["id"])["totals"]
        # the version they are on (enrolled under it, or moved to it by an amendment) and each amendment
        info.update(amendments.version_of(s, info["id"]))
    if as_json:
        print_json(info)
        return
    _print_summary(info)


def _print_summary(info: dict[str, Any]) -> None:
    console.print(f"[bold]{info['id']}[/] — {info['status']}", highlight=False)
    console.print(
        f"sex {info['sex'] or '?'}, age {info['age'] if info['age'] is not None else '?'}; "
        f"consent: {info['consent']['detail']}; enrolled: {info['enrolled_on'] or 'no'}",
        highlight=False,
    )
    pv = info.get("protocol")
    if pv:
        console.print(f"protocol: {pv['id']} {pv['version']} ({pv.get('since', '')})", highlight=False)
    for a in info.get("amendments", ()):
        console.print(
            f"  amendment {a['from']} -> {a['to']} by {a['by']} at {a['at']} ({a['event']}): {a['reason']}",
            highlight=False,
        )
    if info["failed_criteria"]:
        console.print(f"screen failure: {', '.join(info['failed_criteria'])}", highlight=False)
    cumulative = info.get("cumulative_dose", ())  # per unit of the regimens' doses
    named = next(
        (c for c in cumulative or () if c.get("column")), None
    )  # the version's name (`dose.cumulative`)
    given = (
        f"{named['column']} {_scientific(named['value'])}"
        if named is not None
        else f"cumulative dose {_dose(cumulative)}"
    )
    console.print(f"doses {info['doses_given']}/{info['doses_planned']}, {given}", highlight=False)
    for d in info["doses"]:
        console.print(
            f"  dose {d['dose']} day {d['day']} at {d['start']} ({d['window']}) kit {d['kit_id']}",
            highlight=False,
        )
    if info["next_dose"]:
        nd = info["next_dose"]
        why = f" ({nd['hold']})" if nd.get("hold") else ""
        console.print(f"next: dose {nd['dose']} due {nd['due']} — {nd['state']}{why}", highlight=False)
    for v in info.get("visits", ()):  # format 2: visits per administration, then calendar visits
        if v.get("placed_from"):  # its anchor's event has not happened: no date yet
            console.print(f"  visit {v['name']} ({v['placed_from']}) — {v['state']}", highlight=False)
            continue
        owed = f"; owed: {', '.join(v['owed'])}" if v["owed"] and v["state"] != "missed" else ""
        span = f", window {v['window'][0]} to {v['window'][1]}" if v.get("window") else ""
        console.print(f"  visit {v['name']} ({v['due']}{span}) — {v['state']}{owed}", highlight=False)
    for dv in info["deviations"]:
        n = dv.get("dose", dv.get("number"))  # format 1's dose, a format-2 administration's number
        if n is not None:
            due = f" (due {dv['due']})" if dv.get("due") else ""
            console.print(f"[yellow]deviation:[/] {dv['kind']} {n}{due}", highlight=False)
        else:  # about no administration: what shows it (a protocol's declared deviation may name no record)
            why = dv.get("detail") or dv.get("event")
            console.print(
                f"[yellow]deviation:[/] {dv['kind']}" + (f" ({why})" if why else ""), highlight=False
            )
    for ae in info["open_aes"]:
        extra = " SERIOUS" if ae["serious"] else ""
        console.print(f"open AE {ae['event']}: {ae['term']} grade {ae['grade']}{extra}", highlight=False)
    for missing in info["ae_expected"]:
        console.print(f"[yellow]open item:[/] {missing['detail']}", highlight=False)
    if info["dsmg_hold"]:
        console.print(f"[red]DSMG hold:[/] {info['dsmg_hold']}", highlight=False)
    so = info["signoff"]
    console.print(
        f"sign-off: {so['state']}" + (f" — {so['manifestation']}" if "manifestation" in so else ""),
        highlight=False,
    )
    v = info.get("sdv")
    if v:
        changed = v["changed since verified"]
        console.print(
            f"source data: {v['verified']} of {v['records']} records verified, {v['partly verified']} partly"
            + (f", [bold red]{changed} changed since verified[/]" if changed else "")
            + " (`wardcrf report sdv -p ID`)",
            highlight=False,
        )


def today(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """What is due or overdue now on this ward (doses, vitals, post-dose checks, DSMG, SAE reports)."""
    with session(data_dir) as s:
        info = workflow.today(s)
    if as_json:
        print_json(info)
        return
    console.print(f"Now {info['now']} ({info['zone']})", highlight=False)
    if info["dsmg_hold"]:
        console.print(f"[red]DSMG hold:[/] {info['dsmg_hold']}", highlight=False)
    if not info["items"]:
        console.print("Nothing due.")
        return
    width = max((len(i["participant"] or "") for i in info["items"]), default=11)
    table = Table(Column("participant", no_wrap=True, min_width=width), "what", "due", "state")
    for i in info["items"]:
        state = f"{i['state']}: {i['hold']}" if i.get("hold") else i["state"]
        # Text, not markup: `what` can quote a version name that came by sync
        table.add_row(
            i["participant"] or "—", Text(i["what"]), (i["due"] or "")[:16].replace("T", " "), state
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    root.command("today")(today)
