"""What the CLI prints when stdout is not a terminal (a pipe, `> file`): whole rows, never cut or wrapped."""

from __future__ import annotations

import io

from rich.table import Table

from wardcrf.cli.common import SafeConsole

LONG_NAME = "Dr Marie-Claire Mbuyi Kabasele Ngalula, infirmière-cheffe du pavillon d'isolement " + "x" * 40


def test_a_table_sent_to_a_file_keeps_every_cell_whole_at_80_columns(cli):
    add = cli(
        "user",
        "add",
        "mbuyi",
        "--role",
        "clinician",
        "--full-name",
        LONG_NAME,
        env={"WARDCRF_NEW_PASSWORD": "x" * 12},
    )
    assert add.code == 0, add.output
    res = cli("user", "list", env={"COLUMNS": "80"})
    assert res.code == 0, res.output
    lines = res.out.splitlines()
    header = next(line for line in lines if "full name" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "user",
        "full name",
        "role",
        "state",
        "language",
    ]
    row = next(line for line in lines if "mbuyi" in line)
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[:4] == ["mbuyi", LONG_NAME, "clinician", "active"]
    assert "…" not in res.out
    # one line per row: the name is not wrapped onto a second line
    assert sum("mbuyi" in line for line in lines) == 1 and len(row) > 80


def test_a_table_on_a_terminal_still_fits_the_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    console = SafeConsole(file=out, width=40, force_terminal=True, color_system=None)
    table = Table("id", "what")
    table.add_row("KIN01-003", "remdesivir maintenance / dose 4 " * 3)
    console.print(table)
    assert max(len(line) for line in out.getvalue().splitlines()) <= 40


def test_a_table_among_other_output_is_drawn_whole_and_the_console_keeps_its_width():
    out = io.StringIO()
    console = SafeConsole(file=out, width=80)
    table = Table("participant", "what", "due", "state")
    what = "remdesivir maintenance / dose 4 at the bedside, kit VIAL-RDV-0004, 120 min left"
    table.add_row("KIN01-003", what, "2026-12-07 09:54", "due now")
    console.print(table)
    assert console.width == 80
    row = next(line for line in out.getvalue().splitlines() if "KIN01-003" in line)
    assert [c.strip() for c in row.strip("│").split("│")] == [
        "KIN01-003",
        what,
        "2026-12-07 09:54",
        "due now",
    ]
