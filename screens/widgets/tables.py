"""The ward's tables: Textual's DataTable, repainted once its new rows are measured.

Textual (8.2) measures rows added to a DataTable on the table's next idle
moment and widens the columns then, but lines it already painted with the
old widths (a column as wide as its header) stay in its render caches,
whose keys do not include the widths. Whether a table filled by a worker
showed "03-1  pha  reco" or "03-16 09:00  pharmacist  record.submitted"
depended on whether it happened to paint between the fill and the
measurement — a truncated table for the user until the next cursor move,
and a snapshot that differed about one run in five.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from wardcrf import text as text_rule


def safe_cell(cell: Any) -> Any:
    """A cell as it may reach the terminal: stored text shown as text.

    A str cell is parsed as markup by the table (a name typed "Dr [acting]"
    would lose its brackets, "[link=...]" would become a link) and any escape
    sequence in old data would reach the terminal raw: it stays a str, with
    control, bidirectional and zero-width characters spelled out
    (`text.for_terminal`) and its brackets escaped, so it shows as typed. A
    `Text` built by a screen keeps its styles; a refused character in it
    becomes U+FFFD, in place.
    """
    if isinstance(cell, str):
        return escape(text_rule.for_terminal(cell))
    if isinstance(cell, Text) and text_rule.same_width(cell.plain) != cell.plain:
        cell = cell.copy()
        cell.plain = text_rule.same_width(cell.plain)
    return cell


class WardTable(DataTable[Any]):
    """A DataTable that shows stored text as text, and whose first paint after new rows uses the measured widths.

    Every table of the ward app is one (`safe_cell`): the audit trail, the
    dashboard, the participant's timeline show what people typed, years of it.
    """

    @classmethod
    def listing(cls, id: str, *columns: str, zebra: bool = True) -> WardTable:
        """A list of the ward app: a row cursor, striped unless `zebra` is off, with these column headers.

        Every list a user moves through row by row (trail, timeline, queries,
        the DSMG board, the tray) is this one shape; a screen names its id and
        headers and nothing else, so the lists behave alike.
        """
        table = cls(id=id, cursor_type="row", zebra_stripes=zebra)
        if columns:
            table.add_columns(*columns)
        return table

    def add_row(self, *cells: Any, **kwargs: Any) -> RowKey:
        return super().add_row(*(safe_cell(c) for c in cells), **kwargs)

    def add_column(self, label: Any, **kwargs: Any) -> ColumnKey:
        return super().add_column(safe_cell(label), **kwargs)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:
        super().update_cell(row_key, column_key, safe_cell(value), **kwargs)

    def update_cell_at(self, coordinate: Any, value: Any, **kwargs: Any) -> None:
        super().update_cell_at(coordinate, safe_cell(value), **kwargs)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        # Every render cache is keyed by the update count: bump it so lines
        # painted with the previous widths are never reused.
        self._update_count += 1
        self.refresh()
