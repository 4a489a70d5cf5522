"""One kit given twice where two laptops' logs meet (issue 17): held at the hub, never both merged.

Two gaps in the hub's kit-twice hold (`dosing.hold_kit_given_twice`), closed:

- **One participant, one single-use kit, two laptops.** Laptop A records an
  administration with kit K for participant P; laptop B (same site, another
  device, offline) records another administration for P with K. Each laptop
  is right on its own. Before, the hub compared format-2 administration
  records of *other* participants only and applied both. A kit that serves a
  participant's whole course (`[[products]] kit = { use = "course" }`) used
  across days by that participant is not held.
- **A format-1 dose and a format-2 administration naming one kit.** MEXCOVID
  1.0's `dose` records are the `doses` projection, a format-2 version's
  administration records the `administration_kits` one; nothing compared
  the two. A participant amended from 1.0 to a format-2 version, or two
  participants on different versions, given one kit: held like a double use.

MEXCOVID 2.0 here is a format-2 version of its own (no `reencodes`) whose
administration form is `inhalation`, so its records are read through the
`administration_kits` projection only (a form named `dose` is in both).

Laptop A is the workflow template's ward (WUH01-001 enrolled under 1.0 ten
days ago, skin test negative, the DSMG's continue); 2.0 is loaded and
WUH01-002 enrolled under it; A's bundle reaches the hub. Laptop B is a second
laptop of the site provisioned from the hub (`sync restore` without
`--replaces`), so it holds the same participants; then both record offline.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from hub_engines import ledger
from site_users import ROLE_USERS
from synckit import PASSWORD, card_of, connect, make_hub, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import hub, registry, restore
from wf_support import Staff, _copy_site, at, today

from wardcrf import kits, users, workflow
from wardcrf.engine import model
from wardcrf.errors import ValidationFailed
from wardcrf.site import Site
from wardcrf.workflow import amendments

P1, P2 = "WUH01-001", "WUH01-002"
KIT = "KIT-S1"


def _mex_2(*, course: bool = False) -> str:
    """MEXCOVID 2.0, format 2 of its own: the inhalation recorded on an `inhalation` form; `course`: one kit
    per participant's course instead of one per inhalation."""
    src = model.shipped_source("mexcovid.toml").replace('version = "1.0"', 'version = "2.0"', 1)
    src = re.sub(r"\nreencodes = \[.*?\n\]\n", "\n", src, count=1, flags=re.S)
    src = src.replace("[forms.dose]", "[forms.inhalation]").replace("[forms.dose.", "[forms.inhalation.")
    for old, new in (
        ('record = { form = "dose",', 'record = { form = "inhalation",'),
        ('forms = ["dose", ', 'forms = ["inhalation", '),
        ("count(dose) > 0", "count(inhalation) > 0"),
    ):
        assert old in src
        src = src.replace(old, new)
    # The engine's field rules read `required_when` as an expression; this file's table form ({ when, message })
    # is read by the format-1 rules of its re-encoding only: as a version of its own, the expression alone.
    src, n = re.subn(
        r'required_when = \{ when = "([^"]*)", message = "[^"]*" \}', r'required_when = "\1"', src
    )
    assert n >= 5
    if course:
        old = 'kit = { use = "administration" }'
        assert old in src
        src = src.replace(old, 'kit = { use = "course" }', 1)
    return src


class _Laptop(Staff):
    """The workflow helpers of `wf_support.Staff` on one laptop's data directory."""

    def __init__(self, site: Site, tmp: Path) -> None:
        super().__init__(lambda user: open_(site, user), tmp)
        self.site = site
        tmp.mkdir(parents=True, exist_ok=True)  # the cold chain's logger files are written here

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()


def _inhalation(w: Staff, pid: str, days_ago: int, kit: str, hh: int = 9) -> str:
    """A format-2 administration record (2.0's `inhalation` form) giving `kit`, its cold chain complete first."""
    day = today() - timedelta(days=days_ago)
    start = at(day, hh)
    w.freezer()
    with w.clin.store.transaction():
        w.custody(kit, start)
        e = w.submit(
            "inhalation",
            participant=pid,
            kit_id=kit,
            lot="LOT-A1",
            particles="2.0e8",
            volume="6",
            start=start,
            end=at(day, hh, 30),
        )
    return e.id


def _dose(w: Staff, pid: str, days_ago: int, kit: str) -> str:
    """A format-1 dose record (1.0's `dose` form) giving `kit`."""
    return w.dose(pid, 1, today() - timedelta(days=days_ago), kit=kit).id


def _second_laptop(h: Site, tmp: Path) -> Site:
    """Laptop B of site WUH01: registered at the hub beside A (not a replacement), restored from it."""
    res, card = restore.provision(
        tmp / "lap2", site="WUH01", device_name="lap2", admin="admin", password=PASSWORD, hub_card=card_of(h)
    )
    stick = tmp / "stick-lap2"
    stick.mkdir()
    hs = open_(h)
    try:
        registry.register_device(hs, card)
        hub.outbound_files(hs, card.device, stick, restore=True)
    finally:
        hs.close()
    b = Site.open(res.site.data_dir)
    s = b.unlock("admin", PASSWORD)
    try:
        restore.complete(s, from_dir=stick)
        for name in (*ROLE_USERS, "clinician2"):  # accounts came back with the data; passwords are per laptop
            user = users.get(s.store, name)
            if user is not None and user["active"]:
                users.change_password(s, name, PASSWORD)
    finally:
        s.close()
    return b


class Pair:
    """Laptops A and B of one site, the hub between them."""

    def __init__(self, h: Site, a_site: Site, a: Staff, b: _Laptop, tmp: Path) -> None:
        self.hub, self.a_site, self.a, self.b, self.tmp = h, a_site, a, b, tmp
        self.n = 0

    def device(self, which: str) -> str:
        return card_of(self.a_site if which == "a" else self.b.site).device

    def send(self, which: str) -> list:
        """Every bundle of laptop `which` not receipted yet, imported at the hub: what each import says."""
        self.n += 1
        files = export(self.a_site if which == "a" else self.b.site, self.tmp / f"usb-{which}{self.n}")
        return [hub_import(self.hub, f) for f in files]


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """Laptop A's data directory (the `cli` fixture's site): WUH01-001 enrolled under 1.0 ten days ago."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _ward_a(site: Site, cli, tmp_path: Path, *, course: bool = False) -> _Laptop:
    """Laptop A: the template's ward with MEXCOVID 2.0 loaded and WUH01-002 enrolled under it."""
    path = tmp_path / "mexcovid-2.0.toml"
    path.write_text(_mex_2(course=course), "utf-8")
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    a = _Laptop(site, tmp_path / "pages-a")
    pid, _day0 = a.enrolled_participant(10)
    assert pid == P2
    return a


@pytest.fixture
def laptops(request, site: Site, cli, tmp_path: Path, hub_engine: str):
    """A (the template's ward, 2.0 loaded, WUH01-002 enrolled under it) and B restored from the hub (at a
    SQLCipher and at a PostgreSQL hub: `hub_engine`)."""
    h = make_hub(tmp_path)
    connect(site, h)
    a = _ward_a(site, cli, tmp_path, course=bool(getattr(request, "param", False)))
    pair = Pair(h, site, a, None, tmp_path)  # type: ignore[arg-type]
    assert [x.outcome.status for x in pair.send("a")] == ["applied"]
    a.close()
    pair.b = _Laptop(_second_laptop(h, tmp_path), tmp_path / "pages-b")
    try:
        yield pair
    finally:
        pair.a.close()
        pair.b.close()


def _applied(results) -> bool:
    """Every new bundle applied (the outbox's earlier files: already applied)."""
    got = [r.outcome.status for r in results]
    return "applied" in got and set(got) <= {"applied", "already"}


def _hub_rows(h: Site, sql: str, params: tuple = ()) -> list[dict]:
    """Rows where the hub keeps what its wards send (its file, or its PostgreSQL database)."""
    with ledger(h) as (_s, store):
        return store.rows(sql, params)


def _held_events(h: Site) -> list[dict]:
    """The hub's own `sync.bundle_held` events (in its file, on either engine)."""
    s = open_(h)
    try:
        rows = s.store.rows("SELECT line FROM events WHERE type = 'sync.bundle_held'")
    finally:
        s.close()
    return [json.loads(r["line"])["body"] for r in rows]


def _replayed_still_held_once(pair: Pair) -> None:
    """The held file imported again: still held, one row, one flag in the hub's log."""
    [row] = _hub_rows(pair.hub, "SELECT file FROM sync_held")
    assert hub_import(pair.hub, Path(row["file"])).outcome.status == "kit"
    assert len(_hub_rows(pair.hub, "SELECT id FROM sync_held")) == 1
    assert len(_held_events(pair.hub)) == 1


# -- one participant, one single-use kit, two laptops ------------------------------------------------


@pytest.mark.parametrize("first", ["a", "b"])
def test_one_participant_given_one_single_use_kit_on_two_laptops_is_held_and_released_once_corrected(
    laptops: Pair, first: str, cli
) -> None:
    pair = laptops
    given = {
        "a": _inhalation(pair.a, P2, 9, KIT),  # dose 1, on laptop A
        "b": _inhalation(pair.b, P2, 8, KIT.lower()),  # the next day on laptop B, the same vial as typed
    }
    second = "b" if first == "a" else "a"
    assert _applied(pair.send(first))
    results = pair.send(second)
    held = results[-1].outcome
    assert held.status == "kit" and not results[-1].ok, held.message
    dev_first, dev_second = pair.device(first), pair.device(second)
    assert (
        f"administration record {given[second]} from device {dev_second} gives kit {KIT} to {P2}; the same kit "
        f"was already given to {P2} ({given[first]}) on device {dev_first}" in held.message
    ), held.message
    assert "a single-use kit (not one kit for the course) is given once; not merged" in held.message
    assert "\n" not in held.message

    # nothing of the held bundle merged: the kit's one use is the first laptop's record
    with ledger(pair.hub, "coordinator") as (hs, wards):
        assert [(u.participant, u.event_id) for u in kits.administration_uses(wards, KIT)] == [
            (P2, given[first])
        ]
        assert [x["reason"] for x in hub.status(hs)["held_rules"]] == ["kit"]
        assert [(x["device"], x["reason"]) for x in hub.held_rules(hs)] == [(dev_second, "kit")]
    [body] = _held_events(pair.hub)
    assert (body["kit"], body["participant"], body["used_by_participant"]) == (KIT, P2, P2)
    assert (body["record"], body["record_device"]) == (given[second], dev_second)
    assert (body["used_by_event"], body["used_by_device"]) == (given[first], dev_first)
    # the coordinator sees why, in one line each: the kit, the participant, both records and devices
    hub_dir = str(pair.hub.data_dir)
    for command in ("conflicts", "status"):
        r = cli("hub", command, "--data-dir", hub_dir, user="coordinator")
        assert r.code == 0, r.err
        text = " ".join(r.out.split())  # as printed, whatever the terminal's width wrapped
        assert text.count("HELD (kit)") == 1, text
        line = text[text.index(f"HELD (kit) {dev_second} bundle ") :]
        for word in (KIT, P2, given[first], given[second], dev_first, dev_second, "single-use"):
            assert word in line, (word, line)
    _replayed_still_held_once(pair)
    # the applied laptop's bundle again: already applied, nothing changes
    assert {r.outcome.status for r in pair.send(first)} == {"already"}

    # The coordinator's question to the wards: the first laptop's vial was misread. Corrected there, the
    # correction's bundle applied, the held bundle imported again is applied and its hold resolved.
    fixer = pair.a if first == "a" else pair.b
    fixer.custody("KIT-S2", at(today() - timedelta(days=9 if first == "a" else 8)))
    workflow.amend(fixer.clin, given[first], {"kit_id": "KIT-S2"}, reason="vial label misread at the bedside")
    assert _applied(pair.send(first))
    [row] = _hub_rows(pair.hub, "SELECT file FROM sync_held")
    assert hub_import(pair.hub, Path(row["file"])).outcome.status == "applied"
    with ledger(pair.hub, "coordinator") as (hs, wards):
        assert [u.event_id for u in kits.administration_uses(wards, KIT)] == [given[second]]
        assert [u.event_id for u in kits.administration_uses(wards, "KIT-S2")] == [given[first]]
        assert hub.status(hs)["held_rules"] == [] and hub.held_rules(hs) == []
    [row] = _hub_rows(pair.hub, "SELECT resolved_at, detail FROM sync_held")
    assert row["resolved_at"] is not None and row["detail"].endswith("; released: applied")


@pytest.mark.parametrize("laptops", [True], indirect=True, ids=["course-kit"])
@pytest.mark.parametrize("first", ["a", "b"])
def test_a_course_kit_given_to_its_participant_across_days_on_two_laptops_is_applied(
    laptops: Pair, first: str
) -> None:
    pair = laptops
    given = {"a": _inhalation(pair.a, P2, 9, KIT), "b": _inhalation(pair.b, P2, 8, KIT)}
    second = "b" if first == "a" else "a"
    assert _applied(pair.send(first))
    assert _applied(pair.send(second))
    with ledger(pair.hub, "coordinator") as (hs, wards):
        uses = kits.administration_uses(wards, KIT)
        assert sorted(u.event_id for u in uses) == sorted(given.values()) and {
            u.participant for u in uses
        } == {P2}
        assert hub.held_rules(hs) == []
    assert _hub_rows(pair.hub, "SELECT id FROM sync_held") == []


def test_different_kits_on_two_laptops_and_both_formats_are_applied(laptops: Pair) -> None:
    pair = laptops
    a1 = _dose(pair.a, P1, 9, "KIT-F1")  # MEXCOVID 1.0 (its format-1 text run by the engine), on A
    a2 = _inhalation(pair.a, P2, 9, "KIT-A1")
    b2 = _inhalation(pair.b, P2, 8, "KIT-B1")  # the same participant's next inhalation, its own kit
    assert _applied(pair.send("b"))
    assert _applied(pair.send("a"))
    with ledger(pair.hub, "coordinator") as (hs, wards):
        assert [u.event_id for u in kits.administration_uses(wards, "KIT-F1")] == [a1]
        assert [u.event_id for u in kits.administration_uses(wards, "KIT-A1")] == [a2]
        assert [u.event_id for u in kits.administration_uses(wards, "KIT-B1")] == [b2]
        assert hub.held_rules(hs) == []


# -- MEXCOVID 1.0 (its format-1 text, run by the engine) and a format-2 version naming one kit ---------
# Before every format-1 version ran on the engine these compared format 1's dose records with format 2's
# administrations; a dose under MEXCOVID 1.0 is now an administration of its re-encoding, held the same way.


@pytest.mark.parametrize("first", ["a", "b"])
@pytest.mark.parametrize("who", ["amended participant", "another participant"])
def test_one_kit_given_under_mexcovid_1_0_and_under_a_format_2_version_is_held(
    laptops: Pair, first: str, who: str
) -> None:
    pair = laptops
    dose = _dose(pair.a, P1, 9, KIT)  # WUH01-001's dose 1 under MEXCOVID 1.0, on A
    if who == "amended participant":
        # on B: WUH01-001 moved to the format-2 2.0, then given the same kit (B never saw dose 1)
        amendments.apply(pair.b.inv, P1, "2.0", "amendment 2 approved by the ethics committee")
        target, days_ago = P1, 8
    else:
        target, days_ago = P2, 9  # WUH01-002, enrolled under 2.0
    record = _inhalation(pair.b, target, days_ago, KIT)
    second = "b" if first == "a" else "a"
    assert _applied(pair.send(first))
    results = pair.send(second)
    held = results[-1].outcome
    assert held.status == "kit", held.message
    dev_a, dev_b = pair.device("a"), pair.device("b")
    late, early = (record, dose) if second == "b" else (dose, record)
    late_device, early_device = (dev_b, dev_a) if second == "b" else (dev_a, dev_b)
    assert f"administration record {late} from device {late_device} gives kit {KIT}" in held.message
    assert f"({early}) on device {early_device}" in held.message, held.message
    assert "not merged" in held.message
    [body] = _held_events(pair.hub)
    assert body["kit"] == KIT
    assert {body["participant"], body["used_by_participant"]} == {P1, target}
    assert {body["record"], body["used_by_event"]} == {dose, record}
    assert {body["record_device"], body["used_by_device"]} == {dev_a, dev_b}
    # nothing of the held bundle merged: the kit's one use is the first laptop's
    with ledger(pair.hub, "coordinator") as (_hs, wards):
        administered = [u.event_id for u in kits.administration_uses(wards, KIT)]
        assert administered == ([dose] if first == "a" else [record])
    _replayed_still_held_once(pair)


# -- one laptop: the ward refuses what the hub would hold ----------------------------------------------


def test_one_laptop_refuses_a_kit_given_under_the_other_version(site: Site, cli, tmp_path: Path) -> None:
    """The ward's own rules compare the versions too (the engine's `kit.use` rule), so a single laptop never
    makes the double use the hub would hold; another kit is accepted."""
    a = _ward_a(site, cli, tmp_path)
    try:
        dose = _dose(a, P1, 9, KIT)  # WUH01-001 on MEXCOVID 1.0
        with pytest.raises(ValidationFailed) as got:
            _inhalation(a, P2, 9, KIT.lower())  # WUH01-002 on the format-2 2.0, the same kit as typed
        assert f"kit {KIT} was already used for {P1} dose 1 ({dose})" in got.value.message, got.value.message
        given = _inhalation(a, P2, 9, "KIT-S2")
        with pytest.raises(ValidationFailed) as got:
            a.dose(P1, 2, today() - timedelta(days=8), kit="KIT-S2")
        assert f"kit KIT-S2 was already used for {P2}" in got.value.message, got.value.message
        assert given in got.value.message or P2 in got.value.message
        assert _dose(a, P1, 8, "KIT-S3")  # another kit: accepted
        # nothing of the refused ones saved
        assert [u.event_id for u in kits.administration_uses(a.aud.store, KIT)] == [dose]
        assert [u.event_id for u in kits.administration_uses(a.aud.store, "KIT-S2")] == [given]
    finally:
        a.close()


@pytest.mark.usefixtures("hub_engine")
def test_a_hostile_kit_id_given_twice_is_held_in_one_short_line_and_printed_as_text(
    site: Site, cli, tmp_path: Path
) -> None:
    """A bundle's kit field is the ward's, not bounded at the hub: 30,000 characters with console markup,
    given to two participants, is held like any kit given twice; the line shows the kit's start and length,
    `hub conflicts` prints it as text, nothing of the second bundle is merged."""
    from wardcrf import records

    h = make_hub(tmp_path)
    connect(site, h)
    a = _Laptop(site, tmp_path / "pages-a")
    pair = Pair(h, site, a, None, tmp_path)  # type: ignore[arg-type]
    hostile = "[bold]x[/bold]" + "k" * 30_000
    day = today() - timedelta(days=9)
    try:
        assert a.enrolled_participant(10)[0] == P2
        outcomes = []
        for pid, hh in ((P1, 9), (P2, 10)):
            records.submit(  # as a ward running other code wrote it: no kit id rule applied
                a.clin,
                "dose",
                {"kit_id": hostile, "start": at(day, hh), "end": at(day, hh, 30), "dose_number": 1},
                subject=f"participant:{pid}",
            )
            outcomes.append(pair.send("a")[-1].outcome)
    finally:
        a.close()
    assert outcomes[0].status == "applied"
    held = outcomes[1]
    assert held.status == "kit" and "\n" not in held.message and len(held.message) < 1000, held.message[:300]
    key = "[BOLD]X[/BOLD]" + "K" * 30_000  # the id's comparison key (upper case)
    shown = key[:64]
    assert f"gives kit {shown}… ({len(key)} characters) to {P2}" in held.message, held.message
    assert _hub_rows(h, "SELECT participant FROM doses") == [{"participant": P1}]
    [body] = _held_events(h)
    assert body["kit"] == key  # the hub's log keeps the whole id
    r = cli("hub", "conflicts", "--data-dir", str(h.data_dir), user="coordinator")
    assert r.code == 0, r.err
    text = " ".join(r.out.split())
    assert f"HELD (kit) {pair.device('a')} bundle " in text and f"gives kit {shown}…" in text, text[:500]
