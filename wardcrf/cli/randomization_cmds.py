"""`wardcrf hub randomization make`, `wardcrf randomize`, `wardcrf unblind`, `wardcrf report randomization`.

Thin commands over `wardcrf.randomization` (docs/randomization.md). The
e-signatures of `unblind` take the investigator's password from
WARDCRF_PASSWORD (or a prompt) and the witness's from WARDCRF_PASSWORD_<USER>.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import DataDirOption, JsonOption, ask_password, console, in_place, print_json, session

hub_app = typer.Typer(
    help="Allocation lists: made at the hub, sealed for one ward laptop.", no_args_is_help=True
)


def _protocol(spec: str):  # -> Model (imported lazily: jsonschema stays off the start-up path)
    from ..engine import model

    if spec in model.SHIPPED or f"{spec}.toml" in model.SHIPPED:
        return model.shipped(spec if spec.endswith(".toml") else f"{spec}.toml")
    path = Path(spec)
    if not path.is_file():
        raise UsageError(
            f"protocol {spec!r} is neither a file nor a shipped protocol ({', '.join(model.SHIPPED)})"
        )
    return model.read_file(path)


@hub_app.command("make")
def make(
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d", help="The hub's data directory.")],
    protocol: Annotated[
        str, typer.Option("--protocol", help="A format-2 protocol file, or a shipped one (palm, palm007).")
    ],
    site: Annotated[str, typer.Option("--site", help="The site whose participants the list allocates.")],
    device: Annotated[
        str, typer.Option("--device", help="The ward laptop that allocates (registered here).")
    ],
    per_stratum: Annotated[
        int,
        typer.Option("--per-stratum", min=1, help="Entries wanted per stratum (whole blocks: a few more)."),
    ],
) -> None:
    """Make a sealed, signed allocation list at the hub; it travels in the laptop's next hub bundle."""
    from ..randomization import service
    from ..sync import hub

    model = _protocol(protocol)
    with session(data_dir) as s, hub.ledger_store(s) as wards:  # where the laptops' unblinding keys are
        made = service.make_list(s, model, site, device, per_stratum, wards=wards)
    total = sum(made.strata.values())
    console.print(
        f"List {made.list_id} for {site}, laptop {device}: {total} entries in {len(made.strata)} strata "
        f"({model.id} {model.version}); SHA-256 {made.list_sha256}; recorded as event {made.event.id}. "
        "It travels in the laptop's next hub bundle.",
        highlight=False,
    )


HubDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The hub's data directory.")]
ProtocolId = Annotated[str, typer.Option("--protocol-id", help="The protocol's id, e.g. PALM007.")]


@hub_app.command("unblind-trial")
def unblind_trial(
    data_dir: HubDir,
    protocol_id: ProtocolId,
    reason: Annotated[
        str, typer.Option("--reason", help="Why now, e.g. database locked for the final analysis.")
    ],
) -> None:
    """Unblind a blinded trial at the hub (admin): the unblinded export is possible from then on."""
    from ..randomization import unblinded

    with session(data_dir) as s:
        e = unblinded.unblind_trial(s, protocol_id, reason)
    console.print(f"Trial {protocol_id} unblinded at the hub (event {e.id}).", highlight=False)


@hub_app.command("export")
def export_unblinded(
    data_dir: HubDir,
    protocol_id: ProtocolId,
    out: Annotated[Path, typer.Option("--out", "-o", help="The CSV file to write (participant, arm, ...).")],
) -> None:
    """The statistician's unblinded export (admin, at the hub): participants joined to arms; logged."""
    from ..randomization import unblinded

    # A PostgreSQL hub's allocations queried in its database (`in_place`); its sealed lists and keys in its file.
    with session(data_dir) as s, in_place(s) as reading:
        x = unblinded.export(s, protocol_id, out, reading=reading)
    console.print(
        f"Wrote {x.rows} allocations of {protocol_id} to {x.out} (SHA-256 {x.sha256}); logged as event {x.event_id}.",
        highlight=False,
    )


_WORD = re.compile(r"[A-Za-z0-9_]{1,40}")


def _levels(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, level = v.partition("=")
        if not sep or not name.strip() or not level.strip():
            raise UsageError(f"--stratum {v[:60]!r}: write FACTOR=LEVEL, e.g. --stratum ct_np=HIGH")
        if not _WORD.fullmatch(name.strip()) or not _WORD.fullmatch(level.strip()):
            raise UsageError(
                f"--stratum {v[:60]!r}: FACTOR and LEVEL are letters, digits and _ (at most 40 each),"
                " e.g. --stratum ct_np=HIGH"
            )
        if name.strip() in out:
            raise UsageError(f"--stratum {name.strip()} is given twice")
        out[name.strip()] = level.strip()
    return out


def randomize(
    participant: Annotated[str, typer.Argument(help="The participant to randomize, e.g. WUH01-001.")],
    stratum: Annotated[
        list[str] | None,
        typer.Option("--stratum", help="A stratification factor's level, FACTOR=LEVEL (repeat per factor)."),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Take the next entry of the participant's stratum: the arm (open label) or a kit number (blinded)."""
    from ..randomization import service

    levels = _levels(stratum)
    with session(data_dir) as s:
        allocation = service.allocate(s, participant, levels)
    console.print(allocation.shown(), highlight=False)


def unblind(
    participant: Annotated[str, typer.Argument(help="The blinded participant whose arm must be known.")],
    reason: Annotated[str, typer.Option("--reason", help="A reason code of the protocol's list.")],
    detail: Annotated[str, typer.Option("--detail", help="Why, in words (kept in the audit trail).")],
    witness: Annotated[
        str | None, typer.Option("--witness", help="The second person who signs (when the protocol asks).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Emergency unblinding of one participant: reason, e-signature, witness; the hub is told at the next sync."""
    from ..randomization import service
    from .form_cmds import password_for

    with session(data_dir) as s:
        ask = password_for(s.user)
        own = ask_password(f"Password of {s.user} (e-signature)")
        witness_password = ask(witness) if witness else None
        u = service.unblind(
            s,
            participant,
            reason=reason,
            detail=detail,
            password=own,
            witness=witness,
            witness_password=witness_password,
        )
    kit = f" (kit {u.kit})" if u.kit else ""
    console.print(
        f"UNBLINDED {u.participant}{kit}: arm {u.arm}. Recorded as event {u.event_id}, signed "
        f"{', '.join(u.signatures)}; the participant is flagged and the hub is told at the next sync.",
        highlight=False,
    )


def report(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Allocations per stratum against the list (arms only for open label), unblindings, exhausted strata."""
    from ..randomization import report as rand_report
    from ..sync.hub import ledger_store

    with (
        session(data_dir) as s,
        ledger_store(s) as wards,
    ):  # a PostgreSQL hub's allocations are in its database
        data = rand_report.summary(s, wards=wards)
    if as_json:
        print_json(data)
        return
    if not data["lists"]:
        console.print("No allocation list on this site yet.", highlight=False)
    for lst in data["lists"]:
        if lst["blinded"]:
            kind = "blinded: arms sealed"
        elif lst["reveal"] == "kit":
            kind = f"blinded, unblinded at the hub, ratio {lst['ratio']}"
        else:
            kind = f"open label, ratio {lst['ratio']}"
        console.print(
            f"List {lst['list']} ({lst['protocol']}, {kind}) for {lst['site']} laptop {lst['device']}; "
            f"SHA-256 {lst['list_sha256']}",
            highlight=False,
        )
        for st in lst["strata"]:
            arms = ""
            if "by_arm" in st:
                arms = "  " + ", ".join(f"{a} {n}" for a, n in st["by_arm"].items())
            console.print(
                f"  {st['stratum']}: {st['allocated']} of {st['entries']} allocated{arms}", highlight=False
            )
    for u in data["unblindings"]:
        console.print(
            f"EMERGENCY UNBLINDING {u['participant']}: arm {u['arm']} by {u['user']}"
            f"{' witnessed by ' + u['witness'] if u['witness'] else ''} at {u['ts']}, reason {u['reason']}: "
            f"{u['detail']} (event {u['event_id']})",
            highlight=False,
        )
    for x in data["exhausted"]:
        console.print(
            f"EXHAUSTED stratum {x['stratum']} at {x['site']}: {x['participant']} not randomized ({x['ts']})",
            highlight=False,
        )
    for h in data["held"]:
        state = "resolved" if h["resolved_at"] else "HELD"
        console.print(
            f"{state} bundle {h['bundle_seq']} of device {h['device']}: {h['detail']}", highlight=False
        )


def register(root: typer.Typer, hub: typer.Typer, report_app: typer.Typer) -> None:
    hub.add_typer(hub_app, name="randomization")
    root.command("randomize")(randomize)
    root.command("unblind")(unblind)
    report_app.command("randomization")(report)
