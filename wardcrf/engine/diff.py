"""What changed between two protocol versions (`wardcrf protocol diff OLD NEW`, docs/protocol.md).

Both versions are validated first by their format's reader (`engine.loading`),
then compared as the data their files declare: every table and every
array of tables whose entries carry a `code` (arms, visits, regimens and
their administrations, products, criteria, gates, rules, deviations,
endpoints...) is matched by that code, forms by name and fields by name,
so a re-ordered file is not a change and a renamed code is one removal and
one addition. Labels, help texts and comments count as changes too (what a
clinician reads is part of the protocol); the version itself and
`reencodes` are shown as the pair's identity, not as a change.

The result is grouped by what a data manager reviews: forms and fields,
schedule, arms, regimens, products, eligibility, gates, rules, endpoints, and
the rest. Pure: no store, no I/O.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Sections in the order a reviewer reads them; a table not listed goes under "Other".
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Forms and fields", ("forms",)),
    ("Schedule", ("calendar", "schedule", "epochs", "visits", "anchors", "dose_assessments")),
    ("Arms and randomization", ("arms", "randomization", "strata")),
    ("Regimens", ("regimens",)),
    ("Products", ("products", "product")),
    ("Eligibility", ("eligibility", "criteria")),
    ("Gates", ("gates", "sentinel", "dsmg")),
    ("Rules and deviations", ("rules", "deviations", "warnings")),
    ("Consent", ("consent",)),
    ("Safety", ("safety", "adverse_events", "disposition")),
    ("Endpoints and analysis", ("analysis",)),
    ("Trial", ("trial",)),
)
_GROUP_OF = {section: title for title, sections in GROUPS for section in sections}
OTHER = "Other"
_HEADER = "protocol"
# What names the version itself: shown as the pair's identity above the changes, never as a change.
_HEADER_IDENTITY = ("version", "reencodes")

_MAX_VALUE = 160  # characters of one value in the text report


@dataclass(frozen=True)
class Change:
    """One attribute of an entity that differs: `old`/`new` None for a key absent on that side."""

    attribute: str
    old: Any
    new: Any


@dataclass
class Entry:
    """An entity (a form, a field, an arm, a visit, a table) added, removed or changed."""

    kind: str  # form, field, arm, regimen, administration, table, ...
    name: str  # "vitals", "vitals.temp", "ZMAPP", "regimens[zmapp].administrations[dose]"
    status: str  # added | removed | changed
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Side:
    """One version compared: what it says it is."""

    id: str
    version: str
    format: int
    sha256: str
    source_name: str


@dataclass
class Diff:
    old: Side
    new: Side
    groups: dict[str, list[Entry]]

    @property
    def identical(self) -> bool:
        return not any(self.groups.values())

    def count(self) -> int:
        return sum(len(v) for v in self.groups.values())

    def to_json(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            return {
                "id": s.id,
                "version": s.version,
                "format": s.format,
                "sha256": s.sha256,
                "source": s.source_name,
            }

        return {
            "old": side(self.old),
            "new": side(self.new),
            "identical": self.identical,
            "same_content": self.old.sha256 == self.new.sha256,
            "changes": self.count(),
            "groups": {
                title: [
                    {
                        "kind": e.kind,
                        "name": e.name,
                        "status": e.status,
                        "changes": [
                            {"attribute": c.attribute, "old": _jsonable(c.old), "new": _jsonable(c.new)}
                            for c in e.changes
                        ],
                    }
                    for e in entries
                ]
                for title, entries in self.groups.items()
                if entries
            },
        }

    def lines(self) -> list[str]:
        """The readable report: a heading per group, one line per entity."""
        out = [
            f"{self.old.id} {self.old.version} (format {self.old.format}, {self.old.source_name}) -> "
            f"{self.new.id} {self.new.version} (format {self.new.format}, {self.new.source_name})"
        ]
        if self.old.id != self.new.id:
            out.append(
                f"note: the protocol ids differ ({self.old.id} -> {self.new.id}): two different trials?"
            )
        if self.identical:
            same = (
                "same file content"
                if self.old.sha256 == self.new.sha256
                else "only comments, layout or order differ"
            )
            out.append(f"No differences in what the protocol declares ({same}).")
            return out
        for title, entries in self.groups.items():
            if not entries:
                continue
            out.append("")
            out.append(f"{title}:")
            for e in entries:
                out.append("  " + _entry_line(e))
        out.append("")
        n = self.count()
        out.append(f"{n} change{'s' if n != 1 else ''}.")
        return out


def _entry_line(e: Entry) -> str:
    mark = {"added": "+", "removed": "-", "changed": "~"}[e.status]
    head = f"{mark} {e.kind} {e.name}"
    if e.status == "added":
        return head + " added"
    if e.status == "removed":
        return head + " removed"
    parts = []
    for c in e.changes:
        if c.attribute.endswith("]") and (c.old is None or c.new is None):
            # a coded entry (a choice): its code says it
            parts.append(f"{c.attribute} {'added' if c.old is None else 'removed'}")
        elif c.old is None:
            parts.append(f"{c.attribute} added: {_show(c.new)}")
        elif c.new is None:
            parts.append(f"{c.attribute} removed (was {_show(c.old)})")
        else:
            parts.append(f"{c.attribute}: {_show(c.old)} -> {_show(c.new)}")
    return head + ": " + "; ".join(parts)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _show(value: Any) -> str:
    text = json.dumps(_jsonable(value), ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


# -- comparing ------------------------------------------------------------------------------


def _keyed(items: Sequence[Any]) -> dict[str, Any] | None:
    """A list of tables each with a distinct string `code`, as {code: table}; else None."""
    if not items or not all(isinstance(i, Mapping) and isinstance(i.get("code"), str) for i in items):
        return None
    out = {str(i["code"]): i for i in items}
    return out if len(out) == len(items) else None


def _leaf_changes(old: Any, new: Any, path: str, out: list[Change]) -> None:
    """Attribute changes of one entity, as dotted paths; keyed lists (choices) by code."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for k in _keys(old, new):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append(Change(sub, None, new[k]))
            elif k not in new:
                out.append(Change(sub, old[k], None))
            else:
                _leaf_changes(old[k], new[k], sub, out)
        return
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        ko, kn = _keyed(old), _keyed(new)
        if ko is not None and kn is not None:
            for code in _keys(ko, kn):
                sub = f"{path}[{code}]"
                if code not in ko:
                    out.append(Change(sub, None, kn[code]))
                elif code not in kn:
                    out.append(Change(sub, ko[code], None))
                else:
                    _leaf_changes(ko[code], kn[code], sub, out)
            return
    if _norm(old) != _norm(new):
        out.append(Change(path, old, new))


def _norm(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True)


def _keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return list(a) + [k for k in b if k not in a]


def _entity(kind: str, name: str, old: Any, new: Any) -> Entry | None:
    if old is None:
        return Entry(kind, name, "added")
    if new is None:
        return Entry(kind, name, "removed")
    changes: list[Change] = []
    _leaf_changes(old, new, "", changes)
    return Entry(kind, name, "changed", changes) if changes else None


_SINGULAR = {
    "arms": "arm",
    "visits": "visit",
    "epochs": "epoch",
    "anchors": "anchor",
    "regimens": "regimen",
    "administrations": "administration",
    "products": "product",
    "criteria": "criterion",
    "gates": "gate",
    "rules": "rule",
    "deviations": "deviation",
    "warnings": "warning",
    "strata": "stratum",
    "dose_assessments": "dose assessment",
    "endpoints": "endpoint",
}


def _forms(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Entry]:
    entries: list[Entry] = []
    for name in _keys(old, new):
        fo, fn = old.get(name), new.get(name)
        if fo is None or fn is None:
            entries.append(Entry("form", name, "added" if fo is None else "removed"))
            continue
        top = _entity("form", name, _without(fo, "fields"), _without(fn, "fields"))
        if top is not None:
            entries.append(top)
        fields_o, fields_n = fo.get("fields", {}), fn.get("fields", {})
        for fname in _keys(fields_o, fields_n):
            e = _entity("field", f"{name}.{fname}", fields_o.get(fname), fields_n.get(fname))
            if e is not None:
                entries.append(e)
    return entries


def _without(table: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k != key}


def _section(name: str, old: Any, new: Any, prefix: str = "") -> list[Entry]:
    """Entries for one top-level key (or a nested table such as `analysis`)."""
    label = f"{prefix}{name}"
    lo = list(old) if isinstance(old, list | tuple) else None
    ln = list(new) if isinstance(new, list | tuple) else None
    ko = _keyed(lo) if lo is not None else None
    kn = _keyed(ln) if ln is not None else None
    if (ko is not None or lo == []) and (kn is not None or ln == []) and (lo is not None and ln is not None):
        ko, kn = ko or {}, kn or {}
        kind = _SINGULAR.get(name, name)
        entries: list[Entry] = []
        for code in _keys(ko, kn):
            a, b = ko.get(code), kn.get(code)
            nested = [k for k in ("administrations",) if isinstance((a or b or {}).get(k), list | tuple)]
            if a is not None and b is not None and nested:
                top = _entity(kind, code, _strip(a, nested), _strip(b, nested))
                if top is not None:
                    entries.append(top)
                for k in nested:
                    entries += _section(k, a.get(k, []), b.get(k, []), prefix=f"{code}/")
                continue
            e = _entity(kind, f"{prefix}{code}", a, b)
            if e is not None:
                entries.append(e)
        return entries
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        # A table holding arrays of coded tables (`[analysis] endpoints`): those by code, the rest as one.
        inner = [k for k in _keys(old, new) if _coded_list(old.get(k, [])) and _coded_list(new.get(k, []))]
        entries = []
        top = _entity("table", f"[{label}]", _strip(old, inner), _strip(new, inner))
        if top is not None:
            entries.append(top)
        for k in inner:
            entries += _section(k, old.get(k, []), new.get(k, []))
        return entries
    e = _entity("table", f"[{label}]", old, new)
    return [e] if e is not None else []


def _coded_list(value: Any) -> bool:
    """A list of coded tables, or an empty list (compared entry by entry)."""
    return isinstance(value, list | tuple) and (not value or _keyed(list(value)) is not None)


def _strip(table: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k not in keys}


def compare(old_source: str, new_source: str, old: Side, new: Side) -> Diff:
    """The grouped differences between two validated protocol sources."""
    a = tomllib.loads(old_source)
    b = tomllib.loads(new_source)
    groups: dict[str, list[Entry]] = {title: [] for title, _ in GROUPS}
    groups[OTHER] = []
    header = _HEADER_IDENTITY
    groups["Trial"] += _section(
        _HEADER, _strip(a.get(_HEADER, {}), header), _strip(b.get(_HEADER, {}), header)
    )
    for key in _keys(a, b):
        if key == _HEADER:
            continue
        title = _GROUP_OF.get(key, OTHER)
        if key == "forms":
            groups[title] += _forms(a.get("forms", {}), b.get("forms", {}))
            continue
        if key not in a or key not in b:
            present = a.get(key) if key in a else b.get(key)
            status = "added" if key not in a else "removed"
            kind = _SINGULAR.get(key, "table")
            if isinstance(present, list | tuple) and _keyed(list(present)) is not None:
                for code in _keyed(list(present)) or {}:
                    groups[title].append(Entry(kind, code, status))
            else:
                groups[title].append(Entry("table", f"[{key}]", status))
            continue
        groups[title] += _section(key, a[key], b[key])
    return Diff(old, new, groups)


def side_of(read: Any, source_name: str) -> tuple[str, Side]:
    """(source, Side) of a validated protocol: a format-1 `Protocol` (its `engine` set for a stored
    format-2 version) or a format-2 `Model`."""
    is_format1_reader = hasattr(read, "forms")  # a `wardcrf.protocol.Protocol`; a `Model` has no `forms`
    fmt = 2 if not is_format1_reader or read.engine is not None else 1
    return str(read.source), Side(str(read.id), str(read.version), fmt, str(read.sha256), source_name)
