"""A trial's demo file: what its demo site says about the trial, as data beside the protocol.

A shipped protocol's demo (`wardcrf demo --protocol NAME`) is seeded by
generic code (`workflow.demo`, `sync.engine_demo`) from
`wardcrf/protocols/demo/<protocol id, lower case>.toml`: the cohort (each
participant's values) and the records entered for each, with the forms and
fields the protocol declares. docs/protocol.md ("A trial's demo file") says
how one is written; this module reads it, refuses a bad one naming each
problem at its line (`DemoFileError`, before anything is seeded) and fills in
a record's values for a participant (`render`).

A value is written as it is stored, or as a placeholder that is the whole
string:

- `"{name}"`, `"{name.key}"`: the participant's value (a key of its
  `[[participants]]` table), the dose's (`dose.KEY`: the participant's
  `doses` entry a per-dose record is entered for) or one the seeder gives
  (`dose_number`, `kit`, `lot`, `dose_amount`, `dob`, `consent_page`, ...);
- `"{date}"`: the record's day; `"{date:N}"`, `"{date:name}"`,
  `"{date:name+N}"`: that many days from the participant's day 0;
- `"{time:HH:MM}"` on the record's day, `"{time:N HH:MM}"` on day N, and in a
  per-dose record `"{time:start+H:MM}"` / `"{time:hour-H:MM}"` from the dose's
  start (or the top of its hour).

Nothing here executes text: placeholders are matched by one regular
expression and looked up, never evaluated.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from .. import protocol_file
from ..engine.model import _Reader
from ..errors import Refused

DIRECTORY = "demo"
"""Where demo files are shipped: `wardcrf/protocols/demo/` (beside the protocols, never one of them)."""
MAX_PARTICIPANTS = 200
MAX_RECORDS = 500
MAX_DOSES = 100
MAX_DAYS = 36500
"""Days from day 0 a value may name (`{date:name}`): a century either way."""

RECORD_KEYS = frozenset(
    {"form", "day", "at", "by", "values", "fields_from", "each_dose", "administration", "if", "step"}
)
USERS = frozenset({"clinician", "investigator", "dsmg"})
"""Who enters a record (`by`): the sessions the seeder opens."""

_PLACEHOLDER = re.compile(r"^\{(?P<name>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)(?::(?P<arg>[^{}]*))?\}$")
_DAYS = re.compile(r"^(?:(?P<n>-?[0-9]{1,4})|(?P<name>[a-z_][a-z0-9_]*)(?P<delta>[+-][0-9]{1,4})?)$")
_CLOCK = re.compile(
    r"^(?:(?:(?P<day>-?[0-9]{1,4}) )?(?P<hh>[0-2][0-9]):(?P<mm>[0-5][0-9])"
    r"|(?P<anchor>start|hour)(?:(?P<sign>[+-])(?P<dh>[0-9]{1,2}):(?P<dm>[0-5][0-9]))?)$"
)
_HHMM = re.compile(r"^(?P<hh>[01][0-9]|2[0-3]):(?P<mm>[0-5][0-9])$")
_BORN = re.compile(r"^(?P<m>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12][0-9])$")


class DemoFileError(Refused):
    """A demo file that cannot be seeded; `problems` lists each at its line. Exit 1 (refused)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__("invalid demo file: " + "; ".join(problems[:3]) + more)


@dataclass(frozen=True)
class Record:
    """One record of the file: entered for each participant (`[[records]]`) or for one (`records` of it)."""

    form: str
    day: int
    at: str
    by: str
    values: Mapping[str, Any]
    fields_from: tuple[str, ...] = ()
    each_dose: bool = False
    administration: bool = False
    only_if: str | None = None
    step: str | None = None  # a seeder that times the records itself: the moment of its story it is for
    path: tuple[str | int, ...] = ()
    where: str = ""  # file:line, for a refusal met while seeding


@dataclass(frozen=True)
class DemoFile:
    protocol: str
    filename: str
    data: Mapping[str, Any]
    participants: tuple[Mapping[str, Any], ...] = ()
    records: tuple[Record, ...] = ()
    own_records: tuple[tuple[Record, ...], ...] = ()  # each participant's own, in order
    supply: Mapping[str, Any] = field(default_factory=dict)

    def at_step(self, step: str) -> tuple[Record, ...]:
        """The records a seeder that times them itself enters at `step` of its story, in file order."""
        return tuple(r for r in self.records if r.step == step)


def name_for(protocol_id: str) -> str:
    return f"{protocol_id.lower()}.toml"


def shipped_source(protocol_id: str) -> str | None:
    """The shipped demo file of a protocol (by its id), or None when it has none."""
    item = resources.files("wardcrf.protocols").joinpath(DIRECTORY, name_for(protocol_id))
    return item.read_text("utf-8") if item.is_file() else None


@dataclass
class Scope:
    """What a placeholder is looked up in, for one participant's record."""

    day0: date
    day: date
    zone: ZoneInfo
    values: Mapping[str, Any]  # the participant's, then the seeder's (given)
    dose: Mapping[str, Any] | None = None
    start: datetime | None = None

    def at(self, day: date, hh: int, mm: int) -> datetime:
        """Local time on `day` (minutes past midnight added, as a ward clock reads)."""
        return datetime(day.year, day.month, day.day, tzinfo=self.zone) + timedelta(hours=hh, minutes=mm)

    def clock(self, text: str) -> datetime:
        m = _CLOCK.match(text)
        if m is None:
            raise ValueError(f"{text!r} is not a time (HH:MM, N HH:MM, start+H:MM or hour-H:MM)")
        if m["anchor"] is None:
            day = self.day0 + timedelta(days=int(m["day"])) if m["day"] is not None else self.day
            return self.at(day, int(m["hh"]), int(m["mm"]))
        if self.start is None:
            raise ValueError(f"{text!r}: start and hour are a dose's, only in a per-dose record (each_dose)")
        base = self.start if m["anchor"] == "start" else self.start.replace(minute=0)
        delta = timedelta(hours=int(m["dh"] or 0), minutes=int(m["dm"] or 0))
        return base - delta if m["sign"] == "-" else base + delta

    def days(self, text: str) -> date:
        m = _DAYS.match(text)
        if m is None:
            raise ValueError(f"{text!r} is not a day (N, name or name+N)")
        if m["n"] is not None:
            return self.day0 + timedelta(days=int(m["n"]))
        base = self.lookup(m["name"])
        if isinstance(base, bool) or not isinstance(base, int) or abs(base) > MAX_DAYS:
            raise ValueError(f"{m['name']!r} is not a whole number of days (at most {MAX_DAYS} either way)")
        return self.day0 + timedelta(days=base + int(m["delta"] or 0))

    def lookup(self, path: str) -> Any:
        first, *rest = path.split(".")
        if first == "dose" and rest:
            if self.dose is None:
                raise ValueError(f"{path!r}: a dose's value, only in a per-dose record (each_dose)")
            value: Any = self.dose
        elif first in self.values:
            value = self.values[first]
        else:
            raise ValueError(f"{first!r} is not a value of the participant nor one the seeder gives")
        for key in rest:
            if not isinstance(value, Mapping) or key not in value:
                raise ValueError(f"{path!r}: no {key!r} there")
            value = value[key]
        return value


def render(value: Any, scope: Scope) -> Any:
    """A record's value with its placeholders filled in (`ValueError` naming a bad one)."""
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, scope) for v in value]
    if not isinstance(value, str) or not value.startswith("{"):
        return value
    m = _PLACEHOLDER.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a placeholder ({{name}}, {{date:N}} or {{time:HH:MM}})")
    name, arg = m["name"], m["arg"]
    if name == "date":
        return (scope.day if arg is None else scope.days(arg)).isoformat()
    if name == "time":
        if arg is None:  # the moment a seeder that times its records gives (`sync.engine_demo`)
            if "time" not in scope.values:
                raise ValueError("{time} needs a time here: {time:HH:MM}")
            return scope.values["time"]
        return scope.clock(arg).isoformat()
    if arg is not None:
        raise ValueError(f"{value!r}: only date and time take an argument")
    found = scope.lookup(name)
    return list(found) if isinstance(found, tuple) else found


def values_of(rec: Record, scope: Scope) -> Mapping[str, Any]:
    """The record's values for a participant: `fields_from` tables first, then `values` (which win)."""
    out: dict[str, Any] = {}
    for name in rec.fields_from:
        table = scope.lookup(name)
        if not isinstance(table, Mapping):
            raise ValueError(f"fields_from {name!r} is not a table of fields")
        out.update(render(table, scope))
    for key, v in rec.values.items():
        out[key] = render(v, scope)
    return out


def entered_at(rec: Record, scope: Scope) -> datetime:
    return scope.clock(rec.at)


def birth_date(age: int, born: str, day0: date) -> date:
    """The day of birth (`born`, MM-DD) of someone `age` years old on `day0`."""
    m = _BORN.match(born)
    if m is None:
        raise ValueError(f"born {born!r} is not MM-DD")
    month, day = int(m["m"]), int(m["d"])
    year = day0.year - age - (1 if (month, day) > (day0.month, day0.day) else 0)
    if (month, day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)  # born on 29 February: the year of birth has none
    return date(year, month, day)


# -- reading --------------------------------------------------------------------------------------


def read(
    source: str,
    filename: str,
    ward: Any,
    *,
    given: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    steps: frozenset[str] | None = None,
    users: frozenset[str] = USERS,
) -> DemoFile:
    """Read and check a demo file for the ward's protocol (`protocol.Protocol`, its forms); `given`: what
    the seeder fills in for a participant, as a sample (any day, any kit). `steps`: the moments of a
    seeder that times the records itself (`sync.engine_demo`): each record names its `step` and has no
    `at`. `users`: who may enter a record (`by`). Every problem is named at its line (`DemoFileError`); nothing is seeded from a refused file."""
    try:
        data, r = protocol_file.read_source(source, filename, _Reader)
    except protocol_file.ProtocolFileError as exc:  # its size, characters, nesting or TOML
        raise DemoFileError([p.replace("a protocol file", "a demo file") for p in exc.problems]) from None
    known = {"protocol", "supply", "participants", "records"}
    r.only_keys(data, known, ())
    if data.get("protocol") != ward.id:
        r.err(("protocol",), f"names {data.get('protocol')!r}; this is the demo of {ward.id!r}")
    supply = r.table(data.get("supply"), ("supply",), required=False)
    r.only_keys(supply, {"lot", "kit_prefix"}, ("supply",))
    for key in supply:
        if not isinstance(supply[key], str):
            r.err(("supply", key), "must be text")
    people = data.get("participants", [])
    if not isinstance(people, list) or not people or len(people) > MAX_PARTICIPANTS:
        r.err(("participants",), f"give 1 to {MAX_PARTICIPANTS} [[participants]] tables")
        people = []
    records = _records(r, data.get("records"), ("records",), ward, steps, users)
    if steps is None and records and (records[0].each_dose or records[0].only_if):
        r.err(("records", 0), "the first record registers the participant: it is entered once, for every one")
    own: list[tuple[Record, ...]] = []
    for i, p in enumerate(people):
        if not isinstance(p, dict):
            r.err(("participants", i), "must be a table")
            own.append(())
            continue
        own.append(_records(r, p.get("records", []), ("participants", i, "records"), ward, steps, users))
        _check_participant(r, i, p)
    demo = DemoFile(
        protocol=str(data.get("protocol")),
        filename=filename,
        data=data,
        participants=tuple(people),
        records=records,
        own_records=tuple(own),
        supply=supply,
    )
    if not r.problems:
        _rehearse(r, demo, ward, given)
    if r.problems:
        raise DemoFileError(r.problems)
    return demo


def _records(
    r: protocol_file._Reader,
    raw: Any,
    path: tuple[str | int, ...],
    ward: Any,
    steps: frozenset[str] | None,
    users: frozenset[str],
) -> tuple[Record, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_RECORDS:
        r.err(path, f"must be a list of at most {MAX_RECORDS} record tables")
        return ()
    out = []
    for i, rec in enumerate(raw):
        here = (*path, i)
        if not isinstance(rec, dict):
            r.err(here, "must be a table")
            continue
        r.only_keys(rec, RECORD_KEYS, here)
        form = rec.get("form")
        if not isinstance(form, str) or form not in ward.forms:
            r.err((*here, "form"), f"{form!r} is not a form of {ward.id} ({', '.join(sorted(ward.forms))})")
            continue
        day = rec.get("day", 0)
        if isinstance(day, bool) or not isinstance(day, int) or abs(day) > 3650:
            r.err((*here, "day"), "must be a whole number of days from day 0 (at most 3650 either way)")
            continue
        step = rec.get("step")
        if steps is not None:
            if step not in steps:
                r.err((*here, "step"), f"{step!r} is not a moment of this demo ({', '.join(sorted(steps))})")
                continue
            if "at" in rec or "day" in rec or rec.get("each_dose"):
                r.err(here, "this demo times its records itself: give its step, not at, day or each_dose")
                continue
        elif step is not None:
            r.err((*here, "step"), "this demo's records are timed by at and day, not by a step")
            continue
        at = rec.get("at", "00:00" if steps is not None else None)
        if not isinstance(at, str) or _CLOCK.match(at) is None:
            r.err(
                (*here, "at"),
                "must be the time it is entered: HH:MM, or start+H:MM / hour-H:MM in a per-dose record",
            )
            continue
        by = rec.get("by", "clinician")
        if by not in users:
            r.err((*here, "by"), f"{by!r} is not a demo user who enters records ({', '.join(sorted(users))})")
            continue
        values = rec.get("values", {})
        if not isinstance(values, dict):
            r.err((*here, "values"), "must be a table of field = value")
            continue
        fields = ward.forms[form].fields
        for key in values:
            if key not in fields:
                r.err((*here, "values", key), f"{key!r} is not a field of form {form} ({', '.join(fields)})")
        fields_from = rec.get("fields_from", [])
        if not isinstance(fields_from, list) or not all(isinstance(x, str) for x in fields_from):
            r.err((*here, "fields_from"), "must be a list of names of the participant's tables")
            continue
        flags = {k: rec.get(k, False) for k in ("each_dose", "administration")}
        if any(not isinstance(v, bool) for v in flags.values()):
            r.err(here, "each_dose and administration are true or false")
            continue
        if flags["administration"] and not flags["each_dose"]:
            r.err((*here, "administration"), "an administration is a per-dose record (each_dose = true)")
        only_if = rec.get("if")
        if only_if is not None and not isinstance(only_if, str):
            r.err((*here, "if"), "must name a value that is true or false")
        out.append(
            Record(
                form=form,
                day=day,
                at=at,
                by=by,
                values=values,
                fields_from=tuple(fields_from),
                each_dose=flags["each_dose"],
                administration=flags["administration"],
                only_if=only_if,
                step=step,
                path=here,
                where=f"{r.filename}:{r.line(here) or '?'}",
            )
        )
    return tuple(out)


def _check_participant(r: protocol_file._Reader, i: int, p: dict[str, Any]) -> None:
    here: tuple[str | int, ...] = ("participants", i)
    ago = p.get("enrolled_days_ago")
    if ago is not None and (isinstance(ago, bool) or not isinstance(ago, int) or not 0 <= ago <= 3650):
        r.err((*here, "enrolled_days_ago"), "must be a whole number of days (0 to 3650)")
    age, born = p.get("age"), p.get("born")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 120):
        r.err((*here, "age"), "must be whole years (0 to 120)")
    if born is not None and (not isinstance(born, str) or _BORN.match(born) is None):
        r.err((*here, "born"), "must be the birthday as MM-DD (01-01 to 12-29)")
    doses = p.get("doses", [])
    if not isinstance(doses, list) or len(doses) > MAX_DOSES:
        r.err((*here, "doses"), f"must be a list of at most {MAX_DOSES} dose tables")
        return
    for j, d in enumerate(doses):
        start = d.get("start") if isinstance(d, dict) else None
        if not isinstance(start, str) or _HHMM.match(start) is None:
            r.err((*here, "doses", j), "each dose is a table with its start = HH:MM")


def _rehearse(
    r: protocol_file._Reader,
    demo: DemoFile,
    ward: Any,
    given: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> None:
    """Fill in every record for every participant on a sample day: each placeholder names a value that
    exists and each field (`fields_from` too) is one its form declares, before anything is seeded."""
    zone = ZoneInfo("UTC")
    for i, p in enumerate(demo.participants):
        sample = given(p)
        for key in sorted(set(p) & set(sample)):
            r.err(
                ("participants", i, key),
                f"{key!r} is a value the seeder gives; name the participant's otherwise",
            )
        scope = Scope(date(2020, 6, 1), date(2020, 6, 1), zone, {**sample, **p})
        doses = p.get("doses", [])
        for rec in (*demo.records, *demo.own_records[i]):
            where = f"participant {i + 1}"
            for n, dose in enumerate(doses if rec.each_dose else [None], start=1):
                scope.dose = dose
                scope.start = scope.at(scope.day0, 9, 0) if dose is not None else None
                try:
                    if rec.only_if is not None and not scope.lookup(rec.only_if):
                        break
                    values = values_of(rec, scope)
                    entered_at(rec, scope)
                except ValueError as exc:
                    r.err(rec.path, f"{where}{f' dose {n}' if dose else ''}: {exc}")
                    break
                fields = ward.forms[rec.form].fields
                extra = [k for k in values if k not in fields]
                if extra:
                    r.err(
                        rec.path,
                        f"{where}: {', '.join(extra)} not a field of form {rec.form} (fields_from {', '.join(rec.fields_from)})",
                    )
                    break
