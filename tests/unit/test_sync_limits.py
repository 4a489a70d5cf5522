"""Bounded reads at the hub: every size a bundle can declare has a documented limit (issue 15).

`sync.bundle.LIMITS` holds them (docs/sync.md, "Limits"). Each is tested by
a bundle just over it: refused with one line naming the limit, never read
further, never a crash (a JSON nesting bomb used to end in RecursionError).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from forge import append_raw
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import bundle, hub, ward

from wardcrf.errors import InternalError, Refused

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


@pytest.fixture
def pair(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    return w, h


def export(w, to: Path) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to).files
    finally:
        s.close()


def hub_import(h, f: Path) -> hub.ImportResult:
    s = open_(h)
    try:
        return hub.import_file(s, f)
    finally:
        s.close()


def test_a_json_nesting_bomb_in_an_event_is_refused_not_a_crash(pair, tmp_path: Path) -> None:
    w, h = pair
    add_notes(w, 1)
    # 100,000 nested lists inside a body: canonical JSON, chained and signed like any event.
    s = open_(w)
    try:
        from wardcrf import canonical, eventlog

        seq, prev = eventlog.head(s.store, s.ctx.device)
        last = eventlog.get(s.store, f"{s.ctx.device}-{seq}")
        assert last is not None
        fields = {k: v for k, v in __import__("json").loads(last.line).items() if k != "prev"}
        fields.update(seq=seq + 1, id=f"{s.ctx.device}-{seq + 1}", type="note.added", body={"x": 0})
        line = canonical.event_line(prev, fields).replace('"x":0', '"x":' + "[" * 100_000 + "]" * 100_000)
        with s.store.transaction():
            s.store.execute(
                "INSERT INTO events (id, device, seq, prev, hash, hlc, ts, user, type, subject, amends, line)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (fields["id"], s.ctx.device, seq + 1, prev, canonical.line_hash(line), fields["hlc"], fields["ts"],
                 fields["user"], "note.added", fields["subject"], None, line),
            )  # fmt: skip
            s.store.pending_heads[s.ctx.device] = (seq + 1, canonical.line_hash(line), fields["hlc"])
            s.store.before_commit.append(eventlog._flush_heads)
    finally:
        s.close()
    with pytest.raises(Refused) as refused:
        for f in export(w, tmp_path / "usb"):
            hub_import(h, f)
    assert not isinstance(refused.value, InternalError), refused.value
    assert "nested" in str(refused.value)


@pytest.mark.parametrize(
    ("limit", "value", "words"),
    [
        ("bundle_bytes", 10_000, "larger than"),
        ("members", 3, "more than 3 members"),
        ("manifest_bytes", 100, "manifest.json is larger than 100 bytes"),
        ("event_line_bytes", 200, "larger than 200 bytes"),
        ("events", 2, "more than 2 events"),
    ],
)
def test_each_limit_refuses_what_goes_over_it(pair, tmp_path: Path, monkeypatch, limit: str, value: int,
                                              words: str) -> None:  # fmt: skip
    w, h = pair
    add_notes(w, 4)
    append_raw(w, "note.added", {"text": "x" * 300}, subject="site:WUH01")
    monkeypatch.setattr(bundle, "LIMITS", dataclasses.replace(bundle.LIMITS, **{limit: value}))
    with pytest.raises(Refused) as refused:
        for f in export(w, tmp_path / "usb"):
            hub_import(h, f)
    assert words in str(refused.value), str(refused.value)
    assert not isinstance(refused.value, InternalError)


def test_the_defaults_are_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sync.md").read_text()
    for f in dataclasses.fields(bundle.LIMITS):
        assert f"`{f.name}`" in docs, f.name
