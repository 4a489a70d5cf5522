"""A participant's vital signs across the dosing days: before and after each inhalation.

The chart plots one vital sign at a time (the row highlighted in the table
below it; `m` steps to the next): the value measured before each dose and
after it, with the protocol's expected (soft) range as dashed lines. The
table under it is the legend and the fallback: every vital sign, dose by
dose, as ``pre→post``, readable in any terminal and language (the plot's
own labels stay numeric so CJK text never has to fit inside it).

Data come from `wardcrf.workflow.vitals_series.vitals_by_dose` (every role
may read); `textual_plotext` is imported when this screen is opened, never
at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from wardcrf import protocol as protocols

from .errors import message_of
from .i18n import language, t
from .keys import BACK, LANGUAGE
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.tables import WardTable

PRE_COLOR = "cyan"
POST_COLOR = "orange"
PRE_MARK = "●"
POST_MARK = "◆"

if TYPE_CHECKING:
    from wardcrf.workflow.vitals_series import VitalsSeries


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:g}"


def _cell(pre: float | None, post: float | None) -> str:
    return "—" if pre is None and post is None else f"{_fmt(pre)}→{_fmt(post)}"


class VitalsChart(Screen[None]):
    """Vitals before/after each dose, as a chart and a table."""

    CSS_PATH = "vitals_chart.tcss"
    AUTO_FOCUS = "#chart-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "measure(1)", "chart.key_measure"),
        Binding("M", "measure(-1)", "chart.key_previous_measure", show=False),
        BACK,
        LANGUAGE,
    ]

    @dataclass
    class Loaded(Message):
        """The participant's vitals by dose, or the one line saying why not."""

        series: VitalsSeries | None
        error: str | None

    def __init__(self, ward: Ward, participant: str) -> None:
        super().__init__()
        self.ward = ward
        self.participant = participant
        self.series: Any = None
        self.error: str | None = None
        self.current = 0

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield StatusBar(self.ward, f"{t('chart.title')} · {self.participant}")
        with Vertical(id="chart-body"):
            yield Static(t("chart.loading"), id="chart-legend")
            yield PlotextPlot(id="chart")
            yield WardTable.listing("chart-table")
        yield WardFooter()

    def on_mount(self) -> None:
        if self.series is None:
            self.load()
        else:
            self._fill()

    def relabelled(self) -> None:
        """After a language switch recomposed the screen: redraw from the data already loaded."""
        self._fill()

    @work(thread=True, exclusive=True, group="vitals-chart")
    def load(self) -> None:
        from wardcrf.workflow.vitals_series import vitals_by_dose

        try:
            series = self.ward.call(vitals_by_dose, self.participant)
            error = None
        except Exception as exc:
            series, error = None, message_of(exc)
        self.post_message(self.Loaded(series, error))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._loaded(message.series, message.error)

    def _loaded(self, series: Any, error: str | None) -> None:
        self.series, self.error = series, error
        if self.is_mounted:
            self._fill()

    def _label(self, m: Any) -> str:
        return protocols.tr(m.label, language())

    def _fill(self) -> None:
        legend = self.query_one("#chart-legend", Static)
        if self.error:
            legend.update(self.error)
            legend.add_class("refusal")
            return
        if self.series is None:
            return
        table = self.query_one("#chart-table", DataTable)
        table.clear(columns=True)
        table.add_column(t("chart.measure_col"), key="measure")
        for n in range(1, self.series.doses + 1):
            table.add_column(t("chart.dose_col", n=n), key=f"d{n}")
        for i, m in enumerate(self.series.measures):
            cells = [_cell(m.pre[k], m.post[k]) for k in range(self.series.doses)]
            table.add_row(f"{self._label(m)} ({m.unit})", *cells, key=str(i))
        if self.series.measures:
            table.move_cursor(row=self.current)
        self._plot()

    @on(DataTable.RowHighlighted, "#chart-table")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None or self.series is None:
            return
        index = int(event.row_key.value)
        if index != self.current:
            self.current = index
            self._plot()

    def action_measure(self, step: int) -> None:
        """Plot the next (or previous) vital sign."""
        if self.series is None or not self.series.measures:
            return
        self.current = (self.current + step) % len(self.series.measures)
        self.query_one("#chart-table", DataTable).move_cursor(row=self.current)
        self._plot()

    def _plot(self) -> None:
        from textual_plotext import PlotextPlot

        if self.series is None or not self.series.measures:
            return
        m = self.series.measures[self.current]
        legend = self.query_one("#chart-legend", Static)
        head = t("chart.given", given=self.series.doses_given, planned=self.series.doses)
        text = t(
            "chart.legend",
            measure=self._label(m),
            unit=m.unit,
            pre=f"[{PRE_COLOR}]{t('chart.pre')}[/]",
            post=f"[{POST_COLOR}]{t('chart.post')}[/]",
        )
        if not m.measured:
            text += " · " + t("chart.no_values", measure=self._label(m))
        legend.update(f"{head} · {text}")
        plot = self.query_one("#chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        doses = self.series.doses
        xs = list(range(1, doses + 1))
        values = [v for v in m.pre + m.post if v is not None]
        if m.soft:
            lo, hi = m.soft
            for y in (lo, hi):
                plt.hline(y, "gray")
            values += [lo, hi]
        for series, color, mark in ((m.pre, PRE_COLOR, PRE_MARK), (m.post, POST_COLOR, POST_MARK)):
            pts = [(x, v) for x, v in zip(xs, series, strict=True) if v is not None]
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker=mark)
        plt.xlim(0.5, doses + 0.5)
        plt.xticks([float(x) for x in xs], [str(x) for x in xs])
        if values:
            span = max(values) - min(values) or 1.0
            plt.ylim(min(values) - span * 0.1, max(values) + span * 0.1)
        plot.refresh()
