"""A format-1 version stored before the engine ran format 1 (docs/engine.md, "Every format-1 version on the
engine"): loaded as format 1's own reader loaded it then, for the tests of what such a version still does
(its records readable, no new record, reports refusing it) now that format 1's workflow is gone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from wardcrf import protocol


def unrunnable(version: str) -> str:
    """MEXCOVID VERSION in format 1 without a field format 1 never required and the engine's declarations
    read (a rule reads the labs' WBC): format 1 loaded it, the engine cannot run it."""
    out = protocol.default_source().replace('version = "1.0"', f'version = "{version}"', 1)
    cut = out.index("[forms.labs.fields.wbc]")
    return out[:cut] + out[out.index("\n[", cut + 1) + 1 :]


@contextmanager
def before_the_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As before the engine ran format 1: no stored format-1 version is run through a re-encoding, and
    format 1's own workflow ran every version (a participant could be moved onto any)."""
    from wardcrf.workflow import amendments

    with monkeypatch.context() as m:
        m.setattr(protocol, "_THROUGH", [])
        m.setattr(protocol, "_READ_THROUGH", {})
        m.setattr(amendments, "runs", lambda _proto: True)
        yield


def stored_before(
    cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    name: str,
    *,
    applied_to: str | None = None,
) -> None:
    """`protocol load` as before the engine ran format 1 (format 1's reader alone), and `protocol apply` of
    it to `applied_to` then, back to now: the version is stored and active, its text and SHA-256 as
    loaded."""
    path = tmp_path / name
    path.write_text(source, "utf-8")
    with before_the_engine(monkeypatch):
        r = cli("protocol", "load", str(path), user="investigator")
        assert r.code == 0, r.err
        if applied_to is not None:
            version = protocol.parse(source, name).version
            r = cli(
                "protocol",
                "apply",
                applied_to,
                version,
                "--reason",
                "amendment approved",
                user="investigator",
            )
            assert r.code == 0, r.err
