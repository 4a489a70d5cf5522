"""A freezer's temperature over a chosen window, with its allowed range and excursions.

The line is the unit's logger readings (`reports.unit_readings`); the low and
high limits of the unit's range are drawn across the window; readings
outside the range are marked as excursion points, manual readings as their
own points. The window ends at the unit's newest reading (loggers are
downloaded by hand, so "now" would often show nothing) and spans 6 hours,
a day, a week or the whole record (keys 1–4). Beside the chart: the legend
and the figures a custodian reports (readings, min / max / mean, MKT,
gaps, each excursion). `textual-plotext` is imported here, when the chart
is first opened, never at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from wardcrf.coldchain import reports

from ..errors import message_of
from ..i18n import t
from ..keys import BACK, LANGUAGE
from ..results import Refused
from ..ward import Ward
from ..widgets.footer import WardFooter
from ..widgets.status import StatusBar
from .shared import local_epoch

WINDOWS: tuple[tuple[str, int | None], ...] = (
    ("key.cc_6h", 6 * 3600),
    ("key.cc_24h", 24 * 3600),
    ("key.cc_7d", 7 * 24 * 3600),
    ("key.cc_all", None),
)
TICK_CELLS = 16
"""Room per x-axis label ('16 08:45' plus space): fewer ticks on a narrow plot, so none collide."""


class ChartData(reports.UnitReadings):
    """A unit's readings as the chart draws them: the window it shows (`since` .. `until`, epoch
    seconds; None: from the first reading, up to the newest)."""

    since: int | None
    until: int | None


class ChartScreen(Screen[None]):
    """Temperature chart of one unit."""

    CSS_PATH = "chart.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "window(0)", "key.cc_6h"),
        Binding("2", "window(1)", "key.cc_24h"),
        Binding("3", "window(2)", "key.cc_7d"),
        Binding("4", "window(3)", "key.cc_all"),
        Binding("u", "next_unit", "key.cc_next_unit"),
        BACK,
        LANGUAGE,
    ]

    def __init__(self, ward: Ward, unit: str, window: int = 1) -> None:
        super().__init__()
        self.ward = ward
        self.unit = unit
        self.window = window
        self.data: ChartData | None = None
        self.units: list[str] = [unit]

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield StatusBar(self.ward, t("cc.chart"))
        with Horizontal(id="ch-body"):
            yield PlotextPlot(id="ch-plot")
            yield Static(t("cc.loading"), id="ch-summary")
        yield WardFooter()

    def on_mount(self) -> None:
        self.load()

    def relabelled(self) -> None:
        if self.data is not None:
            self._draw(self.data)

    def on_resize(self) -> None:
        """Ticks depend on the plot's width: draw again at the new size."""
        if self.data is not None:
            self.call_after_refresh(self._draw, self.data)

    def action_window(self, index: int) -> None:
        """Show 6 hours, a day, a week or everything (keys 1–4)."""
        self.window = index
        self.load()

    def action_next_unit(self) -> None:
        """The next storage unit's chart."""
        if len(self.units) > 1:
            self.unit = self.units[(self.units.index(self.unit) + 1) % len(self.units)]
            self.load()

    # -- what the workers post back -----------------------------------------------------
    @dataclass
    class Loaded(Message):
        """A unit's readings over the window, with its `since` and `until`."""

        data: ChartData

    @work(thread=True, exclusive=True, group="cc-chart")
    def load(self) -> None:
        span = WINDOWS[self.window][1]
        try:
            status = self.ward.call(reports.units)
            self.units = [u["unit"] for u in status] or [self.unit]
            unit = next((u for u in status if u["unit"] == self.unit), None)
            last = unit["last_reading"]["t"] if unit and unit["last_reading"] else None
            since = None if span is None or last is None else last - span
            data = self.ward.call(reports.readings, self.unit, since=since, until=last)
        except Exception as exc:
            self.post_message(Refused(message_of(exc)))
            return
        first = since if since is not None else (data["times"][0] if data["times"] else None)
        self.post_message(self.Loaded(ChartData(**data, since=first, until=last)))

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._draw(message.data)

    @on(Refused)
    def _failed(self, refused: Refused) -> None:
        message = refused.text
        self.query_one("#ch-summary", Static).update(message)

    def _draw(self, data: ChartData) -> None:
        from textual_plotext import PlotextPlot

        self.data = data
        plot = self.query_one("#ch-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        low, high = data["low_c"], data["high_c"]
        times, temps = data["times"], data["temps"]
        start = data["since"]
        if start is None or not (times or data["manual"]):
            plt.title(t("cc.chart_empty", unit=data["unit"]))
            plot.refresh()
            self._summary(data)
            return
        end = data["until"] if data["until"] is not None else times[-1]

        def hours(t_: int) -> float:
            return (t_ - start) / 3600

        xs = [hours(x) for x in times]
        width = max(hours(end), 1 / 60)
        if xs:
            plt.plot(xs, temps, label=t("cc.legend_temp"), color="cyan", marker="hd")
        plt.plot([0, width], [low, low], label=t("cc.legend_low", v=f"{low:g}"), color="blue", marker="-")
        plt.plot([0, width], [high, high], label=t("cc.legend_high", v=f"{high:g}"), color="red", marker="-")
        out = [(x, y) for x, y in zip(xs, temps, strict=True) if not low <= y <= high]
        if out:
            plt.scatter(
                [p[0] for p in out],
                [p[1] for p in out],
                label=t("cc.legend_excursion"),
                color="red+",
                marker="x",
            )
        if data["manual"]:
            plt.scatter(
                [hours(m["t"]) for m in data["manual"]],
                [m["temp_c"] for m in data["manual"]],
                label=t("cc.legend_manual"),
                color="yellow",
                marker="o",
            )
        values = [*temps, *(m["temp_c"] for m in data["manual"]), low, high]
        plt.ylim(min(values) - 1, max(values) + 1)
        plt.xlim(0, width)
        fmt = "%d %H:%M" if width <= 48 else "%m-%d"
        n = max(1, min(4, plot.size.width // TICK_CELLS))
        ticks = [width * i / n for i in range(n + 1)]
        plt.xticks(ticks, [local_epoch(self.ward, int(start + x * 3600), fmt) for x in ticks])
        plt.ylabel("°C")
        plot.refresh()
        self._summary(data)

    def _summary(self, data: ChartData) -> None:
        ward = self.ward
        lines = [
            f"{data['unit']} {data['name']}",
            t("cc.range_line", low=f"{data['low_c']:g}", high=f"{data['high_c']:g}"),
            t("cc.window_line", window=t(WINDOWS[self.window][0])),
        ]
        since, until = data["since"], data["until"]
        if since is not None and until is not None:
            lines.append(f"{local_epoch(ward, since)} …")
            lines.append(f"… {local_epoch(ward, until)}")
        s = data["summary"]
        if s:
            lines += [
                t("cc.sum_readings", n=s["readings"]),
                t("cc.sum_minmax", min=f"{s['min_c']:g}", max=f"{s['max_c']:g}"),
                t("cc.sum_mean", mean=s["mean_c"], mkt=s["mkt_c"]),
                t("cc.sum_gaps", n=s["gaps"]),
            ]
        else:
            lines.append(t("cc.no_readings"))
        if data["manual"]:
            lines.append(t("cc.sum_manual", n=len(data["manual"])))
        lines.append(t("cc.sum_excursions", n=len(data["excursions"])))
        for x in data["excursions"]:
            minutes = (x["end_t"] - x["start_t"]) // 60
            peak = "" if x["max_c"] is None else f" {x['max_c']:g} °C"
            lines.append(
                f"  {local_epoch(ward, x['start_t'], '%m-%d %H:%M')} {minutes} min{peak}"
                + (" " + t("cc.still_open") if x["open"] else "")
            )
        self.query_one("#ch-summary", Static).update("\n".join(lines))
