"""WardTable: a table painted before its new rows are measured is repainted with the real widths."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Region
from wardcrf.screens.widgets.tables import WardTable


class OneTable(App[None]):
    CSS = "#t { height: 5; }"

    def compose(self) -> ComposeResult:
        yield WardTable(id="t")


def _text(table: WardTable, y: int) -> str:
    width = table.size.width
    (strip,) = table.render_lines(Region(0, y, width, 1))
    return strip.text


async def test_rows_painted_before_measurement_are_repainted_at_full_width():
    app = OneTable()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(WardTable)
        table.add_column("T")
        await pilot.pause()
        table.add_row("2020-03-16 09:00 pharmacist")
        # paint now, before the table's idle moment measures the new row (what a busy UI does)
        assert _text(table, 1).strip() == "2"  # as wide as the header "T"
        await pilot.pause()
        await pilot.pause()
        assert _text(table, 1).strip() == "2020-03-16 09:00 pharmacist"
        assert _text(table, 0).strip() == "T"
