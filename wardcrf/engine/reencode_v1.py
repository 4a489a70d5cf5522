"""Any format-1 version run by the engine (docs/engine.md, "Format 1 files").

A format-1 file has, by its contract, the shape of the first trial shipped with
wardcrf: that trial's forms and fields and one `[schedule]`. The shipped format-2
re-encoding of that trial declares, as data, everything the format-1 workflow
did in code; so any format-1 version runs on those declarations with its own
values put in (`wardcrf/protocols/format1-on-engine.toml` says where each goes).
No trial's name is in this module: the data file names the base, the paths and
the templates.

`reencode(p)` gives the format-2 model (same id and version; keeping the stored
SHA-256 and source is the caller's: `engine.loading`), or raises
`ProtocolFileError` naming, at its line in the format-1 file, each value the
re-encoding cannot take. `protocol load` calls it before anything is saved, so a
version that cannot run on the engine is refused there, never at capture.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from importlib import resources
from typing import Any

from wardcrf import protocol as format1
from wardcrf import protocol_file
from wardcrf.engine import model
from wardcrf.protocol_file import ProtocolFileError

PLAN_FILE = "format1-on-engine.toml"
_SYNTHETIC = "<format-1 on the engine>"

Step = str | int | tuple[str, str]


@dataclass(frozen=True)
class Plan:
    """`format1-on-engine.toml`, read: the base declarations and where a format-1 value goes."""

    base: dict[str, Any]
    base_file: str
    """The shipped format-2 file the declarations are (`model.shipped(base_file)`)."""
    base_format1: dict[str, Any]
    sets: dict[str, list[str]]
    templates: list[dict[str, Any]]
    drops: list[dict[str, Any]]
    arms: str


@cache
def plan() -> Plan:
    files = resources.files("wardcrf.protocols")
    spec = tomllib.loads(files.joinpath(PLAN_FILE).read_text("utf-8"))
    return Plan(
        base=tomllib.loads(model.shipped_source(spec["base"])),
        base_file=str(spec["base"]),
        base_format1=tomllib.loads(files.joinpath(spec["base_format1"]).read_text("utf-8")),
        sets={k: list(v) for k, v in spec["set"].items()},
        templates=list(spec.get("templates", [])),
        drops=list(spec.get("drops", [])),
        arms=spec["arms"],
    )


def base_model() -> model.Model:
    """The shipped format-2 re-encoding every format-1 version runs on: by format 1's contract its forms
    are a format-1 version's (what reads a stored version the engine cannot run asks it for their roles)."""
    return model.shipped(plan().base_file)


# -- key paths ---------------------------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([a-z_]+)=([^\]]+)\]")


def _steps(path: str) -> list[Step]:
    out: list[Step] = []
    for m in _STEP.finditer(path):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append((m.group(3), m.group(4)))
    return out


def _index(items: list[Any], step: Step) -> int | None:
    if isinstance(step, int):
        return step if step < len(items) else None
    if isinstance(step, tuple):
        key, value = step
        return next((i for i, x in enumerate(items) if isinstance(x, dict) and x.get(key) == value), None)
    return None


def _child(node: Any, step: Step) -> Any:
    if isinstance(step, str):
        return node.get(step) if isinstance(node, dict) else None
    if not isinstance(node, list):
        return None
    i = _index(node, step)
    return None if i is None else node[i]


def get(data: Any, path: str) -> Any:
    node = data
    for step in _steps(path):
        node = _child(node, step)
        if node is None:
            return None
    return node


def _put(data: dict[str, Any], path: str, value: Any) -> bool:
    """Set (or, for None, remove) the value at `path`; False when an array element it names is absent."""
    steps = _steps(path)
    node: Any = data
    for step in steps[:-1]:
        nxt = _child(node, step)
        if nxt is None:
            if not isinstance(step, str) or not isinstance(node, dict):
                return False
            nxt = node[step] = {}
        node = nxt
    last = steps[-1]
    if isinstance(last, str) and isinstance(node, dict):
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
        return True
    if isinstance(node, list):
        i = _index(node, last)
        if i is None:
            return False
        if value is None:
            del node[i]
        else:
            node[i] = copy.deepcopy(value)
        return True
    return False


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every value of a table by dotted path; an array is one value."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else k))
    return out


# -- the version's values put in ---------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z_]+|\[\d+\])+)(?:\|(quoted|join))?\}")


def _names(text: Any) -> set[str]:
    if isinstance(text, str):
        return {m.group(1) for m in _PLACEHOLDER.finditer(text)}
    if isinstance(text, dict):
        return set().union(*(_names(v) for v in text.values())) if text else set()
    if isinstance(text, list):
        return set().union(*(_names(v) for v in text)) if text else set()
    return set()


def _literal(code: Any) -> str:
    s = str(code)
    return f'"{s}"' if "'" in s else f"'{s}'"


def _render(text: Any, v: dict[str, Any]) -> Any:
    if isinstance(text, dict):
        return {k: _render(x, v) for k, x in text.items()}
    if isinstance(text, list):
        return [_render(x, v) for x in text]

    def one(m: re.Match[str]) -> str:
        value = get(v, m.group(1))
        if m.group(2) == "quoted":
            return ", ".join(_literal(x) for x in value or [])
        if m.group(2) == "join" or isinstance(value, list):
            return ", ".join(str(x) for x in value or [])
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value)

    return _PLACEHOLDER.sub(one, text)


def _forms(version: dict[str, Any], one: dict[str, Any], enc: dict[str, Any]) -> dict[str, Any]:
    """The version's forms, each keeping what only the re-encoding declares of it."""
    out: dict[str, Any] = {}
    for name, form in version.items():
        e, o = enc.get(name) or {}, one.get(name) or {}
        new = {k: copy.deepcopy(x) for k, x in e.items() if k not in o and k != "fields"}
        new.update({k: copy.deepcopy(x) for k, x in form.items() if k != "fields"})
        fields: dict[str, Any] = {}
        for fname, spec in (form.get("fields") or {}).items():
            ef = (e.get("fields") or {}).get(fname) or {}
            of = (o.get("fields") or {}).get(fname) or {}
            f = {k: copy.deepcopy(x) for k, x in ef.items() if k not in of}
            f.update(copy.deepcopy(spec))
            if "compute" in f:
                f.pop("computed", None)  # format 1 marks it computed; the re-encoding says how
            if "exports_applies_when" in f and "applies_when" in f and "applies_when" not in ef:
                f["exports_applies_when"] = f.pop("applies_when")  # format 1's NA-only condition
            fields[fname] = f
        new["fields"] = fields
        out[name] = new
    return out


def _drop_form(data: dict[str, Any], name: str) -> None:
    """A form the version does not declare: off every visit's list, and a table that names it gone."""
    for visit in data.get("visits") or []:
        forms = visit.get("forms")
        if isinstance(forms, list):
            visit["forms"] = [f for f in forms if (f.get("form") if isinstance(f, dict) else f) != name]
    for key in [k for k, t in data.items() if isinstance(t, dict) and t.get("form") == name]:
        del data[key]


def declarations(p: format1.Protocol) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The format-2 declarations `p` runs on, and each changed value (path, why) with no place in them."""
    pl = plan()
    v = tomllib.loads(p.source)
    out = copy.deepcopy(pl.base)
    out["protocol"]["id"], out["protocol"]["version"] = p.id, p.version
    out["protocol"].pop("reencodes", None)  # the version itself, not a re-encoding of another
    old = {k: x for k, x in _leaves(pl.base_format1).items() if not k.startswith("forms.")}
    new = {k: x for k, x in _leaves(v).items() if not k.startswith("forms.")}
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} - {
        "protocol.id",
        "protocol.version",
    }
    placed: set[str] = set()
    unplaced: list[tuple[str, str]] = []
    for t in pl.templates:
        names = _names(t["text"])
        hit = {c for c in changed for n in names if n == c or n.startswith((c + ".", c + "["))}
        if hit:
            _put(out, t["to"], _render(t["text"], v))
            placed |= hit
    removals: list[str] = []
    for d in pl.drops:
        if d["when"] in changed and get(v, d["when"]) == d["equals"]:
            removals.extend(d["remove"])
            placed.add(d["when"])
    arms = {k for k in changed if k == pl.arms or k.startswith(pl.arms + ".")}
    if arms:
        template = out["arms"][0]
        given = get(v, pl.arms) or [{"code": "ARM"}]
        out["arms"] = [
            {**copy.deepcopy(template), "code": a.get("code"), "label": a.get("label") or a.get("code")}
            for a in given
            if isinstance(a, dict)
        ]
        placed |= arms
    for path in sorted(changed - placed):
        key = max((k for k in pl.sets if path == k or path.startswith(k + ".")), key=len, default=None)
        if key is None:
            unplaced.append((path, "the engine's declarations have no place for this change"))
            continue
        for target in pl.sets[key]:
            if not _put(out, target + path[len(key) :], get(v, path)):
                unplaced.append((path, "the engine's declarations have no place for this change"))
    vforms, oforms = v.get("forms") or {}, pl.base_format1.get("forms") or {}
    out["forms"] = _forms(vforms, oforms, pl.base.get("forms") or {})
    for name in oforms:
        if name not in vforms:
            _drop_form(out, name)
    for r in removals:
        _put(out, r, None)
    return out, unplaced


def reencode(p: format1.Protocol, *, stored: bool = False) -> model.Model:
    """`p` as the engine's model, or `ProtocolFileError` with each problem at its line of `p`'s file.

    `stored`: `p` was loaded before format 1 ran on the engine, with format 1's leniency: a value the mapping
    has no place for is one format 1's reader never read (a table it did not know, such as `[randomization]`,
    an unknown `[schedule]` key; the mapping places every value it read), so it is ignored again, as format 1
    ignored it, instead of refused; what the engine's reader refuses in the result is still refused. A file
    being loaded (`stored` false) is refused for either."""
    data, unplaced = declarations(p)
    if stored:
        unplaced = []
    lines = p.source.splitlines()
    base = plan().base["protocol"]
    how = (
        f"a format-1 version runs on {base['id']} {base['version']}'s format-2 declarations with its own "
        "values; write this version in format 2 to change it (docs/protocol.md, docs/engine.md 'Format 1 files')"
    )
    problems = [f"{_where(p, lines, path)}: {path}: {why}; {how}" for path, why in unplaced]
    if not problems:
        try:
            return model.parse(to_toml(data), _SYNTHETIC)
        except ProtocolFileError as exc:
            problems = [_relocated(p, lines, text, how) for text in exc.problems]
    raise ProtocolFileError(problems)


def _where(p: format1.Protocol, lines: list[str], path: str) -> str:
    keys = tuple(s for s in _steps(path) if isinstance(s, str))
    line = protocol_file._line_of(lines, keys)
    return f"{p.filename}:{line}" if line else p.filename


def _relocated(p: format1.Protocol, lines: list[str], problem: str, how: str) -> str:
    rest = problem.removeprefix(_SYNTHETIC)
    rest = re.sub(r"^:\d+", "", rest).removeprefix(": ")
    path, _, why = rest.partition(": ")
    return f"{_where(p, lines, path)}: {path}: {why} (in the engine's reading of this version); {how}"


# -- TOML out (one top-level key a line; the engine's reader reads it back) ---------------------


def _str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)
    if isinstance(x, str):
        return _str(x)
    if isinstance(x, (datetime, date, time)):
        return x.isoformat()
    if isinstance(x, list):
        return "[" + ", ".join(_value(i) for i in x) + "]"
    if isinstance(x, dict):
        return "{ " + ", ".join(f"{_str(str(k))} = {_value(i)}" for k, i in x.items()) + " }" if x else "{}"
    raise TypeError(f"not a TOML value: {type(x).__name__}")


def to_toml(data: dict[str, Any]) -> str:
    return "".join(f"{_str(str(k))} = {_value(v)}\n" for k, v in data.items())


__all__ = ["Plan", "declarations", "get", "plan", "reencode", "to_toml"]
