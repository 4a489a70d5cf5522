"""Protocol versions travel with the records captured under them (issue 17).

Each device's chain holds its own `protocol.loaded` before any record it captures under that version, and
a hub applies a device's bundles in chain order, so a hub always holds a record's version by the time the
record arrives. Two places did not keep that order:

- sync's check on import read a record's form actions under versions *already* loaded at the importer,
  so a ward's first bundle (its site's first `protocol.loaded`, then records under it) was checked under
  the names' defaults: a format-2 administration form took `record.submit`, and a pharmacist's infusion
  passed at a hub that did not hold the trial's version yet. Now the versions the bundle itself loads
  before the record count.
- a replacement laptop applied the site's bundles device by device. A laptop that was itself restored
  records under a version another device's bundle loaded (its own chain holds no `protocol.loaded` of
  it); restored again, its bundles could come before that version. Now a restore follows the hub's
  order (`hub.restore_list`, and the `restore/ORDER` file of a USB restore).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_engines import ledger
from record_version_support import version_source
from synckit import PASSWORD, card_of, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import hub, registry, restore

from wardcrf import eventlog, protocol, records, users
from wardcrf.engine import model
from wardcrf.errors import Refused
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub

INFUSION = {"form": "infusion", "data": {"dose_mg": {"value": 50, "unit": "mg"}}}


def _palm_ward(tmp_path: Path, h: Site) -> Site:
    """A PALM ward (format 2 of its own) at a hub initialised with the shipped default, not PALM."""
    w = Site.init(
        tmp_path / "palm",
        site="KIN01",
        device_name="lap1",
        admin="admin",
        password=PASSWORD,
        zone_name="Africa/Kinshasa",
        protocol_file=model.shipped("palm.toml"),
    ).site
    s = open_(w)
    try:
        users.add_user(s, "pharmacist", "Pharma Cist", "pharmacist", PASSWORD)
        users.add_user(s, "clinician", "Clin Ician", "clinician", PASSWORD)
    finally:
        s.close()
    connect(w, h)
    return w


def _first_bundle_with(w: Site, tmp_path: Path, role: str) -> Path:
    from forge import append_raw

    # about the site, not a participant: nothing else (a record before its consent) decides the import
    append_raw(w, "record.submitted", INFUSION, subject="site:KIN01", role=role, user=role)
    (bundle,) = [f for f in export(w, tmp_path / f"usb-{role}") if f.name.endswith(".tar.age")]
    return bundle


def _hub_infusions(h: Site) -> int:
    with ledger(h) as (_s, store):
        return int(store.scalar("SELECT count(*) FROM records WHERE form = 'infusion'") or 0)


def test_a_first_bundle_is_checked_under_the_version_it_loads_refused_for_a_role_that_may_not_dose(
    tmp_path: Path,
) -> None:
    h = make_hub(tmp_path)
    w = _palm_ward(tmp_path, h)
    bundle = _first_bundle_with(w, tmp_path, "pharmacist")
    with pytest.raises(
        Refused, match=r"role pharmacist may not submit 'infusion' records .*\(dose\.record\)"
    ):
        hub_import(h, bundle)
    assert _hub_infusions(h) == 0
    s = open_(h)
    try:
        assert not protocol.is_loaded(s.store, {"id": "PALM", "version": "1.0"})  # nothing of it applied
    finally:
        s.close()


def test_a_first_bundle_from_a_role_that_may_dose_is_not_refused_for_its_role(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    w = _palm_ward(tmp_path, h)
    result = hub_import(h, _first_bundle_with(w, tmp_path, "clinician"))
    assert result.outcome.status == "applied", result.outcome.message
    assert _hub_infusions(h) == 1
    with ledger(h) as (_s, store):
        assert protocol.is_loaded(store, {"id": "PALM", "version": "1.0"})


# -- a restore follows the hub's order -------------------------------------------------------------------


def _replacement(tmp_path: Path, h: Site, name: str, replaces: str) -> tuple[Site, str]:
    res, card = restore.provision(
        tmp_path / name, site="WUH01", device_name=name, admin="admin", password=PASSWORD, hub_card=card_of(h)
    )
    hs = open_(h)
    try:
        registry.register_device(hs, card, replaces=replaces)
    finally:
        hs.close()
    return res.site, card.device


def _restore_from_usb(tmp_path: Path, h: Site, new: Site, device: str, name: str) -> Path:
    stick = tmp_path / name
    stick.mkdir()
    hs = open_(h)
    try:
        hub.outbound_files(hs, device, stick, restore=True)
    finally:
        hs.close()
    s = open_(new)
    try:
        restore.complete(s, from_dir=stick)
    finally:
        s.close()
    return stick


def test_a_restore_applies_bundles_in_the_hubs_order_so_a_version_comes_before_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_hub(tmp_path)
    # lap1 loads 1.2 and records under it; its device id sorts after its replacement's
    monkeypatch.setattr(eventlog, "new_device_id", lambda: "ZZZZZZZ1")
    lap1 = make_ward(tmp_path, "lap1")
    connect(lap1, h)
    s = open_(lap1)
    try:
        protocol.load(s, protocol.parse(version_source("1.2"), "mexcovid-1.2.toml"))
        users.add_user(s, "clin", "Clin Ician", "clinician", PASSWORD)
    finally:
        s.close()
    s = open_(lap1, "clin")
    try:
        records.submit(s, "qa_vitals", {"temp": 37.2}, subject="site:WUH01")
    finally:
        s.close()
    for f in export(lap1, tmp_path / "usb1"):
        if f.name.endswith(".tar.age"):
            assert hub_import(h, f).outcome.status == "applied"

    # lap1 dies; lap1b is restored from the hub and records under 1.2, which lap1's bundle loaded
    monkeypatch.setattr(eventlog, "new_device_id", lambda: "00000002")
    lap1b, lap1b_device = _replacement(tmp_path, h, "lap1b", "ZZZZZZZ1")
    _restore_from_usb(tmp_path, h, lap1b, lap1b_device, "stick1")
    s = open_(lap1b)
    try:
        users.add_user(s, "clin2", "Second Clinician", "clinician", PASSWORD)
    finally:
        s.close()
    s = open_(lap1b, "clin2")
    try:
        assert s.protocol == {"id": "MEXCOVID", "version": "1.2"}
        rec = records.submit(s, "qa_vitals", {"temp": 38.0}, subject="site:WUH01")
        own_loads = s.store.scalar(
            "SELECT count(*) FROM events WHERE device = ? AND type = 'protocol.loaded'"
            " AND json_extract(line, '$.body.version') = '1.2'",
            (lap1b_device,),
        )
        assert own_loads == 0  # its chain names 1.2 but never loads it
    finally:
        s.close()
    for f in export(lap1b, tmp_path / "usb2"):
        if f.name.endswith(".tar.age"):
            assert hub_import(h, f).outcome.status == "applied"

    # lap1b dies too; lap1c: lap1's bundles (which load 1.2) come before lap1b's, whatever the ids
    monkeypatch.setattr(eventlog, "new_device_id", lambda: "00000003")
    lap1c, lap1c_device = _replacement(tmp_path, h, "lap1c", lap1b_device)
    hs = open_(h)
    try:
        devices = [r["device"] for r in hub.restore_list(hs, lap1c_device)]
    finally:
        hs.close()
    lap1_bundles = devices.count("ZZZZZZZ1")
    assert lap1_bundles and devices[:lap1_bundles] == ["ZZZZZZZ1"] * lap1_bundles, devices
    assert set(devices[lap1_bundles:]) == {lap1b_device}, devices
    stick = _restore_from_usb(tmp_path, h, lap1c, lap1c_device, "stick2")
    order = (stick / "restore" / hub.RESTORE_ORDER).read_text("utf-8").split()
    assert len(order) == len(devices) and all("ZZZZZZZ1" in n for n in order[:lap1_bundles]), order
    s = open_(lap1c)
    try:
        assert protocol.is_loaded(s.store, {"id": "MEXCOVID", "version": "1.2"})
        assert protocol.captured_under(s.store, rec.id) == {"id": "MEXCOVID", "version": "1.2"}
        assert records.load(s.store, rec.id) is not None
    finally:
        s.close()


# -- one version, two files: said at the hub, never read silently under the other --------------------------


def _ward_loading(tmp_path: Path, h: Site, name: str, source: str) -> str:
    w = make_ward(tmp_path, name)
    connect(w, h)
    s = open_(w)
    try:
        protocol.load(s, protocol.parse(source, f"{name}.toml"))
        device = s.ctx.device
    finally:
        s.close()
    for f in export(w, tmp_path / f"usb-{name}"):
        if f.name.endswith(".tar.age"):
            assert hub_import(h, f).outcome.status == "applied"
    return device


@pytest.mark.pg_gap(
    "`hub status` at a PostgreSQL hub lists no protocol-content conflict: it reads them from the hub's file"
)
def test_one_version_loaded_with_two_files_is_listed_at_the_hub_and_warned_on_export(
    tmp_path: Path, cli
) -> None:
    h = make_hub(tmp_path)
    first = _ward_loading(tmp_path, h, "lap1", version_source("1.2"))
    other = _ward_loading(tmp_path, h, "lap2", version_source("1.2", temp_label="Tympanic temperature"))
    hs = open_(h)
    try:
        (c,) = hub.status(hs)["protocol_conflicts"]
    finally:
        hs.close()
    assert (c["protocol_id"], c["version"]) == ("MEXCOVID", "1.2")
    assert [f["devices"] for f in c["files"]] == [[first], [other]]
    assert c["held"] == c["files"][0]["sha256"]  # the first file the hub received
    r = cli("hub", "status", "--data-dir", str(h.data_dir))
    assert r.code == 0, r.err
    assert "PROTOCOL CONFLICT MEXCOVID 1.2 was loaded with different files" in " ".join(r.out.split())
    r = cli("export", "csv", "--out", str(tmp_path / "csv"), env={"WARDCRF_DATA_DIR": str(h.data_dir)})
    assert r.code == 0, r.err  # written, and said loudly on stderr
    assert "protocol conflict: MEXCOVID 1.2 was loaded with different files" in " ".join(r.err.split())


def test_one_version_loaded_with_the_same_file_on_two_laptops_is_no_conflict(tmp_path: Path, cli) -> None:
    h = make_hub(tmp_path)
    _ward_loading(tmp_path, h, "lap1", version_source("1.2"))
    _ward_loading(tmp_path, h, "lap2", version_source("1.2"))
    hs = open_(h)
    try:
        assert hub.status(hs)["protocol_conflicts"] == []
    finally:
        hs.close()
    r = cli("export", "csv", "--out", str(tmp_path / "csv"), env={"WARDCRF_DATA_DIR": str(h.data_dir)})
    assert r.code == 0, r.err
    assert "protocol conflict" not in r.err
