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

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class WardTable(DataTable[Any]):
    """A DataTable whose first paint after new rows uses the measured column widths."""

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        # Every render cache is keyed by the update count: bump it so lines
        # painted with the previous widths are never reused.
        self._update_count += 1
        self.refresh()
