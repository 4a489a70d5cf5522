"""A read model's value against its type, at runtime, all the way down (issue #16).

mypy checks what the code says a read model holds; these check what a read
actually returns: every TypedDict (nested ones included, inside lists, dicts
and `X | None`) has its required keys and no key its type does not name, and
plain leaves (str, int, float, bool, None) are of their declared kind. A key
the type does not name would reach a screen or an export unchecked.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

_LEAVES = (str, int, float, bool, type(None))


def shape_problems(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Where `value` does not have the shape of `tp` (empty: it has)."""
    if tp is Any or isinstance(tp, typing.TypeVar):
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: a {type(value).__name__}, not a {tp.__name__}"]
        required, optional = set(tp.__required_keys__), set(tp.__optional_keys__)
        out = [f"{path}: {tp.__name__} lacks {k!r}" for k in sorted(required - set(value))]
        out += [f"{path}: {tp.__name__} has no key {k!r}" for k in sorted(set(value) - required - optional)]
        hints = get_type_hints(tp)
        for k, v in value.items():
            if k in hints:
                out += shape_problems(v, hints[k], f"{path}.{k}")
        return out
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, tp):
            return [f"{path}: a {type(value).__name__}, not a {tp.__name__}"]
        hints = get_type_hints(tp)
        return [
            p
            for f in dataclasses.fields(tp)
            for p in shape_problems(getattr(value, f.name), hints[f.name], f"{path}.{f.name}")
        ]
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        tried = [shape_problems(value, arm, path) for arm in args]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is none of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: a {type(value).__name__}, not a list"]
        return [p for i, v in enumerate(value) for p in shape_problems(v, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: a {type(value).__name__}, not a dict"]
        return [p for k, v in value.items() for p in shape_problems(v, args[1], f"{path}[{k!r}]")]
    if tp in _LEAVES:
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        if tp is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a {tp.__name__}"]
    return []  # other classes and containers: mypy's part


def assert_shape(value: Any, tp: Any) -> None:
    problems = shape_problems(value, tp)
    assert not problems, "\n".join(problems)
