"""Sync benchmarks: bundle export vs Debian `age`, hub import+verify vs `sha256sum`,
incremental export on a large site, hub import of many devices.

    python bench/bench_sync.py [--quick]
    python bench/bench_sync.py memory [--quick] [--runs N] [--baseline-python PY] [--only push,restore,import]

Rows follow bench/run.py: "ratio" is wardcrf's cost over the baseline's cost,
wall and CPU (CPU includes child processes such as `age` and `sha256sum`).
Every pair is measured alternately in one loop (`measure.alternate`): the
export with its fsync vs `age -o` plus an fsync of its output; hub import of a
photo-heavy bundle vs `sha256sum` of the same file, bundle by bundle; the
incremental export vs stdlib doing the same work on the same 10 lines (read
them through the (device, seq) index, tar them with a manifest, age-encrypt
to the hub, write and fsync the file); the 100-device import vs `sha256sum`
of the same files, group of bundles by group of bundles. The peak RSS of a
hub import of the photo-heavy bundle is read from /proc in a fresh process.
`memory` reads the peak RSS of an HTTP push, a restore export and a file
import the same way, alternated with the code before when given an
interpreter that runs it (docs/performance.md, issue #19).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from measure import Pair, Sample, alternate, loadavg, median, once, row

from wardcrf import canonical, devicekeys, features
from wardcrf.canonical import dumps
from wardcrf.site import Site

PASSWORD = "bench-password-1"


def _jpeg(n: int, seed: int) -> bytes:
    """A real JPEG of about `n` bytes (noise at high quality: like a phone photo, incompressible)."""
    import io

    from PIL import Image

    side = int((n / 0.45) ** 0.5)  # noise at q90 is about 0.45 byte per pixel
    img = Image.frombytes("RGB", (side, side // 3 * 2), os.urandom(side * (side // 3 * 2) * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _chain(device: str, site: str, n: int, *, photos: list[str] | None = None) -> list[str]:
    """A device's chain of `n` valid events, as a ward writes them.

    Each simulated laptop enrols its own participants (two devices creating
    one participant id is a clash the hub holds back): per participant a
    consent record (carrying the photographed pages, if any) and its three
    e-signatures (doctor, two witnesses: the hub's consent-first rule holds a
    bundle without them), then vitals records for the rest of the chain.
    """
    lines, prev = [], canonical.GENESIS
    people = max(1, min(50, n // 8))
    pending = [f"sha256:{d}" for d in photos or []]
    seq = 0

    def add(typ: str, subject: str, body: dict[str, Any], user: str, role: str) -> str:
        nonlocal prev, seq
        seq += 1
        fields = {
            "amends": None,
            "body": body,
            "device": device,
            "hlc": f"{1700000000000 + seq:015d}.00000",
            "id": f"{device}-{seq}",
            "protocol": None,
            "reason": None,
            "role": role,
            "seq": seq,
            "site": site,
            "subject": subject,
            "ts": "2026-01-01T00:00:00.000Z",
            "type": typ,
            "tz": "+08:00",
            "user": user,
            "zone": "Asia/Shanghai",
        }
        line = canonical.event_line(prev, fields)
        lines.append(line)
        prev = canonical.line_hash(line)
        return prev

    for k in range(people):
        subject = f"participant:{site}-{device}{k:03d}"
        take = len(pending) if k == people - 1 else min(len(pending), 1)
        pages, pending = pending[:take], pending[take:]
        consent = {
            "consenter": "participant",
            "form_version": "1.0",
            "time": "2026-01-01T08:00:00+08:00",
            "witness_1": "witness-a",
            "witness_2": "witness-b",
            "photos": pages,
        }
        h = add("record.submitted", subject, {"form": "consent", "data": consent}, "doctor", "clinician")
        target, signed = f"{device}-{seq}", hashlib.sha256((h + "\n").encode()).hexdigest()
        for user, role, meaning in (
            ("doctor", "clinician", "authored"),
            ("witness-a", "clinician", "witnessed"),
            ("witness-b", "investigator", "witnessed"),
        ):
            add(
                "signature.applied",
                subject,
                {
                    "target": target,
                    "signed_hash": signed,
                    "meaning": meaning,
                    "signer": user,
                    "full_name": user,
                },
                user,
                role,
            )
    while seq < n:
        vitals = {
            "timepoint": "unscheduled",
            "time": "2026-01-02T09:00:00+08:00",
            "temp": {"value": 36.5 + (seq % 20) / 10, "unit": "C"},
            "pulse": {"value": 60 + seq % 40, "unit": "beats/min"},
        }
        subject = f"participant:{site}-{device}{seq % people:03d}"
        add("record.submitted", subject, {"form": "vitals", "data": vitals}, "doctor", "clinician")
    return lines


def _manifest(
    keys: devicekeys.DeviceKeys, site: str, lines: list[str], photos: list[str], recipients: list[str]
) -> bytes:
    from wardcrf.sync import bundle

    m = {
        "format": bundle.FORMAT,
        "kind": "events",
        "site": site,
        "device": keys.device,
        "key_id": keys.key_id,
        "bundle_seq": 1,
        "prev_manifest": "",
        "events": {"first": 1, "last": len(lines), "count": len(lines)},
        "chain_first_prev": canonical.GENESIS,
        "chain_last": canonical.line_hash(lines[-1]),
        "protocol": None,
        "created": "2026-01-01T00:00:00.000+00:00",
        "recipients": sorted(recipients),
        "photos": sorted(photos),
        "to": "HUB",
    }
    return (dumps(m) + "\n").encode()


def _hub(root: Path) -> tuple[Site, Any]:
    from wardcrf.sync import hub

    res = hub.init(root / "hub", admin="admin", password=PASSWORD)
    return res.site, res.site.unlock("admin", PASSWORD)


def _register(hs: Any, keys: devicekeys.DeviceKeys, site: str) -> None:
    from wardcrf.sync import registry
    from wardcrf.sync.cards import Card

    registry.register_device(
        hs,
        Card(
            "ward", site, keys.device, keys.device.lower(), keys.key_id, keys.sign_public, keys.age_recipient
        ),
    )
def seal_bundles(
    root: Path, hubs: list[Any], devices: int, events: int, prefix: str = "ABX"
) -> tuple[list[Path], list[devicekeys.DeviceKeys]]:
    """One events bundle per new ward laptop (`PREFIX00000`, ...): each laptop registered at every hub in
    `hubs` (open sessions), its `_chain` of EVENTS events sealed to all of them, written to ROOT. The hub
    import benches' bundles (`import_ab`, `import_floor`, `import_growth`), made one way."""
    from wardcrf.sync import bundle

    recipients = []
    for hs in hubs:
        keys_of = devicekeys.load(hs.store, hs.ctx.device)
        assert keys_of is not None
        recipients.append(keys_of.age_recipient)
    root.mkdir(parents=True, exist_ok=True)
    files, laptops = [], []
    for i in range(devices):
        keys = devicekeys.generate(f"{prefix}{i:05d}")
        for hs in hubs:
            _register(hs, keys, "WUH01")
        lines = _chain(keys.device, "WUH01", events)
        manifest = _manifest(keys, "WUH01", lines, [], recipients)
        name, cipher, sig = bundle.seal(manifest, lines, {}, keys.sign_secret)
        (root / name).write_bytes(cipher)
        (root / (name + ".minisig")).write_bytes(sig)
        files.append(root / name)
        laptops.append(keys)
    return files, laptops




def bench_export_vs_age(root: Path, quick: bool) -> list[dict[str, Any]]:
    """Seal a photo-heavy bundle into a file (tar + age + two signatures) vs `age -e -o` on the same tar."""
    from wardcrf.sync import bundle

    n_photos, size = (5, 2_000_000) if quick else (40, 2_500_000)
    keys = devicekeys.generate("BENCHDEV")
    hub = devicekeys.generate("BENCHHUB")
    photos = {}
    for i in range(n_photos):
        data = _jpeg(size, i)
        photos[bundle.sha256(data)] = ("jpg", data)
    digests = list(photos)
    lines = _chain(keys.device, "WUH01", 200, photos=digests)
    manifest = _manifest(keys, "WUH01", lines, digests, [hub.age_recipient])
    plain = bundle.build_tar(manifest, lines, photos, keys.sign_secret)
    mb = len(plain) / 1e6
    out = root / "bundle.tar.age"

    def export_once(_: int) -> None:
        # What `sync export` does per bundle: tar + age streamed into the file, both
        # signatures, and the fsync that makes the file durable before it is reported.
        with open(out, "wb") as fh:
            bundle.seal_into(fh, manifest, lines, photos, keys.sign_secret)
            fh.flush()
            os.fsync(fh.fileno())

    rows = []
    if shutil.which("age"):
        src = root / "plain.tar"
        src.write_bytes(plain)

        def age_once(_: int) -> None:
            target = root / "o.age"
            subprocess.run(["age", "-r", hub.age_recipient, "-o", str(target), str(src)], check=True)
            fd = os.open(target, os.O_RDONLY)  # `age -o` does not fsync: the same durability, counted
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        pair = alternate(export_once, age_once, 7)
        rows.append(
            row(
                f"export photo-heavy bundle ({mb:.0f} MB) into its file, fsync'd",
                pair,
                unit="s",
                target="ratio ≤ 2.0",
                baseline_name="age -r -o on the same tar + fsync of its output",
            )
        )
    else:
        sample, _ = once(lambda: export_once(0))
        rows.append(
            {
                "name": "export photo-heavy bundle (age CLI absent: no baseline)",
                "value": sample.wall,
                "unit": "s",
                "baseline": float("nan"),
                "ratio": float("nan"),
                "target": "ratio ≤ 2.0",
            }
        )
    return rows


def bench_import_vs_sha256sum(root: Path, quick: bool) -> list[dict[str, Any]]:
    """Hub import + verify of a photo-heavy bundle vs `sha256sum` over the same bytes."""
    from wardcrf.sync import bundle, hub

    n_photos, size = (5, 2_000_000) if quick else (40, 2_500_000)
    _hub_site, hs = _hub(root / "imp")
    try:
        hub_keys = devicekeys.load(hs.store, hs.ctx.device)
        rows = []
        ours: list[Sample] = []
        verify: list[Sample] = []
        base: list[Sample] = []
        load0 = loadavg()
        cipher_len = 0
        for rep in range(5):
            keys = devicekeys.generate(f"IMPDEV{rep:02d}")
            _register(hs, keys, "WUH01")
            photos = {}
            for i in range(n_photos):
                data = _jpeg(size, i)
                photos[bundle.sha256(data)] = ("jpg", data)
            digests = list(photos)
            lines = _chain(keys.device, "WUH01", 200, photos=digests)
            manifest = _manifest(keys, "WUH01", lines, digests, [hub_keys.age_recipient])
            _name, cipher, sig = bundle.seal(manifest, lines, photos, keys.sign_secret)
            cipher_len = len(cipher)
            f = root / f"b{rep}.tar.age"
            f.write_bytes(cipher)
            (root / f"b{rep}.tar.age.minisig").write_bytes(sig)
            # In turn, on the same file: sha256sum, verify alone, the whole import
            # (the order flips each round so no one always runs on a warm cache).
            steps = [
                ("base", lambda f=f: subprocess.run(["sha256sum", str(f)], check=True, capture_output=True)),
                ("verify", lambda cipher=cipher, sig=sig: hub.verify(hs.store, cipher, sig)),
                ("ours", lambda cipher=cipher, sig=sig: hub.import_bundle(hs, cipher, sig)),
            ]
            for what, fn in steps if rep % 2 == 0 else [steps[1], steps[0], steps[2]]:
                sample, res = once(fn)
                {"base": base, "verify": verify, "ours": ours}[what].append(sample)
                if what == "ours":
                    assert res.outcome.status == "applied", res.outcome.message
        mb = cipher_len / 1e6
        load = (load0, loadavg())
        rows.append(
            row(
                f"hub verify only, photo-heavy bundle ({mb:.0f} MB)",
                Pair(median(verify), median(base), 5, load),
                unit="s",
                target="ratio ≤ 2.0",
                baseline_name="sha256sum of the same file",
            )
        )
        rows.append(
            row(
                f"hub import+verify, photo-heavy bundle ({mb:.0f} MB; photos checked, kept in the bundle)",
                Pair(median(ours), median(base), 5, load),
                unit="s",
                target="ratio ≤ 2.0",
                baseline_name="sha256sum of the same file",
            )
        )
        rows.append(_import_rss(root, hs, n_photos, size, hub_keys, cipher_len))
        return rows
    finally:
        hs.close()


_RSS_SCRIPT = """
import sys, pathlib
from wardcrf import features
from wardcrf.site import Site
from wardcrf.sync import hub
features.install()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
s = Site.open(pathlib.Path(sys.argv[1])).unlock("admin", sys.argv[3])
f = pathlib.Path(sys.argv[2])
resting = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from now
res = hub.import_file(s, f)
assert res.outcome.status == "applied", res.outcome.message
print(resting, status("VmHWM:"))
"""


def _import_rss(root: Path, hs: Any, n_photos: int, size: int, hub_keys: Any, _len: int) -> dict[str, Any]:
    """Peak RSS of `hub import` of one photo-heavy bundle, in a fresh process (the hub closed here meanwhile)."""
    from wardcrf.sync import bundle

    keys = devicekeys.generate("RSSDEV01")
    _register(hs, keys, "WUH01")
    photos = {}
    for i in range(n_photos):
        data = _jpeg(size, 1000 + i)
        photos[bundle.sha256(data)] = ("jpg", data)
    digests = list(photos)
    lines = _chain(keys.device, "WUH01", 200, photos=digests)
    manifest = _manifest(keys, "WUH01", lines, digests, [hub_keys.age_recipient])
    name, cipher, sig = bundle.seal(manifest, lines, photos, keys.sign_secret)
    f = root / name
    f.write_bytes(cipher)
    (root / (name + ".minisig")).write_bytes(sig)
    data_dir = str(hs.site.data_dir)
    hs.store.checkpoint()
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, data_dir, str(f), PASSWORD],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    resting, peak = int(out[-2]), int(out[-1])
    return {
        "name": f"peak RSS of a hub import of a photo-heavy bundle ({len(cipher) / 1e6:.0f} MB)",
        "value": peak / 1e6,
        "unit": "MB",
        "baseline": len(cipher) / 1e6,
        "ratio": peak / len(cipher),
        "target": "ratio ≤ 1.5 (peak / bundle size)",
        "baseline_name": f"the bundle's size; RSS before the import {resting / 1e6:.0f} MB",
    }


def set_test_hub(admin: Any) -> Any:
    """Give a ward a hub card (keys made here; no hub runs): what `sync export` needs. Returns the keys."""
    from wardcrf.sync import registry
    from wardcrf.sync.cards import Card

    hub_keys = devicekeys.generate("BIGHUB01")
    card = Card(
        "hub", "HUB", hub_keys.device, "hub", hub_keys.key_id, hub_keys.sign_public, hub_keys.age_recipient
    )
    registry.set_hub(admin, card)
    return hub_keys


def incremental_pair(admin: Any, clinician: Any, root: Path, hub_keys: Any, reps: int = 5) -> Pair:
    """`sync export` of 10 new vitals records on a site whose earlier events are all receipted,
    alternated with stdlib doing the same work on the same 10 lines.

    The backlog is cut into bundles first and marked receipted (set-up). The
    baseline reads the 10 lines through the (device, seq) index of a plain
    copy, tars them with a manifest, age-encrypts them to the hub and writes
    and fsyncs the file.
    """
    import io
    import sqlite3
    import tarfile

    import pyrage
    from bench_foundation import plain_copy
    from generate import participant_records
    from wardcrf.sync import ward

    from wardcrf import records

    ward.prepare(admin)  # cut the backlog into bundles, then pretend the hub receipted them
    admin.store.execute("UPDATE sync_outbox SET receipted_at = 'bench' WHERE receipted_at IS NULL")
    out = root / "usb"
    out.mkdir(exist_ok=True)
    admin.store.checkpoint()
    plain = plain_copy(admin.store, root / "incremental-plain.db")
    std = sqlite3.connect(plain)
    recipient = pyrage.x25519.Recipient.from_str(hub_keys.age_recipient)
    head = int(admin.store.scalar("SELECT max(seq) FROM events WHERE device = ?", (admin.ctx.device,)))
    vitals = next(d for f, d in participant_records(0) if f == "vitals")
    vitals = {**vitals, "timepoint": "unscheduled"}

    def ours(rep: int) -> None:
        with clinician.store.transaction():
            for i in range(10):
                records.submit(clinician, "vitals", vitals, subject=f"participant:BENCH-{1 + i:05d}")
        r = ward.export(admin, out)
        assert r.events == 10, r
        admin.store.execute("UPDATE sync_outbox SET receipted_at = 'bench' WHERE receipted_at IS NULL")

    def base(rep: int) -> None:
        lines = [
            r[0]
            for r in std.execute(
                "SELECT line FROM events WHERE device = ? AND seq > ? ORDER BY seq",
                (admin.ctx.device, head - 10),
            )
        ]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("manifest.json", b"{}"), ("events.jsonl", "\n".join(lines).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        cipher = pyrage.encrypt(buf.getvalue(), [recipient])
        with open(root / f"base-{rep}.tar.age", "wb") as fh:
            fh.write(cipher)
            fh.flush()
            os.fsync(fh.fileno())

    try:
        return alternate(ours, base, reps)
    finally:
        std.close()


def bench_incremental_export(root: Path, quick: bool) -> list[dict[str, Any]]:
    """Export 10 new events from a site holding many real events (earlier ones receipted).

    The size sweep (`bench_sweep.py`) measures the same at 10k, 100k and 1M events.
    """
    from generate import generate, new_site

    n = 20_000 if quick else 100_000
    clinician = new_site(root / "big")
    admin = Site.open(root / "big").unlock("admin", PASSWORD)
    try:
        hub_keys = set_test_hub(admin)
        sample, (_p, written) = once(lambda: generate(clinician, n, batch=500))
        pair = incremental_pair(admin, clinician, root, hub_keys)
        return [
            row(
                f"incremental export of 10 new events on {written:,} events"
                f" (generated in {sample.wall:.0f} s)",
                pair,
                unit="ms",
                scale=1000,
                target="≤ 1 s",
                baseline_name="stdlib: the 10 lines by index, tar, age-encrypt, write + fsync",
            )
        ]
    finally:
        admin.close()
        clinician.close()


def bench_hub_many_devices(root: Path, quick: bool) -> list[dict[str, Any]]:
    """Hub import of D devices x E events each (bundle files prepared beforehand).

    Measured twice on fresh hubs: as `wardcrf hub import FILE...` does it
    (`hub.import_files`: one savepoint per bundle, group commits) and one
    bundle at a time with a commit each (`hub.import_bundle`, as HTTP pushes
    arrive). CPU time is shown beside wall time: on a shared 2-vCPU machine
    the wall clock mostly measures the neighbours.
    """
    from wardcrf.sync import bundle, hub

    d, e = (10, 2000) if quick else (100, 10_000)
    d = int(os.environ.get("BENCH_SYNC_DEVICES", d))
    devices = [devicekeys.generate(f"DEV{i:05d}") for i in range(d)]
    chains = [_chain(keys.device, "WUH01", e) for keys in devices]
    rows: list[dict[str, Any]] = []
    # An older build (a before/after comparison) has no import_files: one by one only.
    modes = ("files", "one by one") if hasattr(hub, "import_files") else ("one by one",)
    for mode in modes:
        _hub_site, hs = _hub(root / mode.replace(" ", "-"))
        try:
            hub_keys = devicekeys.load(hs.store, hs.ctx.device)
            out = root / mode.replace(" ", "-") / "usb"
            out.mkdir()
            files, total = [], 0
            for keys, lines in zip(devices, chains, strict=True):
                _register(hs, keys, "WUH01")
                manifest = _manifest(keys, "WUH01", lines, [], [hub_keys.age_recipient])
                name, cipher, sig = bundle.seal(manifest, lines, {}, keys.sign_secret)
                (out / name).write_bytes(cipher)
                (out / (name + ".minisig")).write_bytes(sig)
                files.append(out / name)
                total += len(cipher)
            # In turn, group of bundles by group of bundles: sha256sum of the group's
            # files, then their import (the order flips each group).
            group = max(1, d // 10)
            ours_s: list[Sample] = []
            base_s: list[Sample] = []
            load0 = loadavg()
            for g, at in enumerate(range(0, d, group)):
                chunk = files[at : at + group]

                def importing(chunk: list[Path] = chunk, mode: str = mode, hs: Any = hs) -> None:
                    if mode == "files":
                        for item in hub.import_files(hs, chunk):
                            assert item.result is not None and item.result.outcome.status == "applied", (
                                item.refused
                            )
                    else:
                        for f in chunk:
                            res = hub.import_file(hs, f)
                            assert res.outcome.status == "applied", res.outcome.message

                def summing(chunk: list[Path] = chunk) -> None:
                    subprocess.run(["sha256sum", *map(str, chunk)], check=True, capture_output=True)

                for fn, acc in ((importing, ours_s), (summing, base_s))[:: 1 if g % 2 == 0 else -1]:
                    sample, _ = once(fn)
                    acc.append(sample)
            assert hs.store.scalar("SELECT count(*) FROM events") >= d * e
        finally:
            hs.close()
        total_ours = Sample(sum(x.wall for x in ours_s), sum(x.cpu for x in ours_s))
        total_base = Sample(sum(x.wall for x in base_s), sum(x.cpu for x in base_s))
        rows.append(
            row(
                f"hub import {d} devices x {e:,} events ({total / 1e6:.0f} MB), {mode}, total of"
                f" {len(ours_s)} groups",
                Pair(total_ours, total_base, len(ours_s), (load0, loadavg())),
                unit="s",
                target="≤ 60 s; CPU ratio ≤ 15",
                baseline_name="sha256sum of the same files, group by group in turn",
            )
        )
        rows.append(
            row(
                f"same, per event ({mode})",
                Pair(total_ours, total_base, len(ours_s), (load0, loadavg())),
                unit="µs/event",
                scale=1e6 / (d * e),
                baseline_name="sha256sum per event of the same files",
            )
        )
    return rows


# -- peak RSS of the three paths that used to hold a bundle (issue #19), before/after ------------

_MEMORY_SCRIPT = """
import base64, os, socket, subprocess, sys, threading, time, pathlib
from wardcrf import features
from wardcrf.site import Site
from wardcrf.sync import hub
features.install()

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

what, data_dir, f, password = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
s = Site.open(data_dir).unlock("admin", password)
sig = f.with_name(f.name + ".minisig").read_bytes()
if what == "push":  # `hub serve` on a socket; curl streams the file from disk (its memory is its own)
    import uvicorn
    from wardcrf.sync import server
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(server.app(s), log_level="warning"))
    threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    resting = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", "-T", str(f), "-H", "X-Wardcrf-Minisig: " + base64.b64encode(sig).decode(),
         "-H", "Content-Type: application/octet-stream", "http://127.0.0.1:%d/v1/bundles/%s" % (port, f.name)],
        check=True, capture_output=True, text=True).stdout
    assert '"applied"' in out, out[:300]
    peak = status("VmHWM:")
    srv.should_exit = True
elif what == "restore":  # `hub export --restore` to a directory, for the site's replacement laptop
    resting = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")
    out = hub.outbound_files(s, sys.argv[5], pathlib.Path(sys.argv[6]), restore=True)
    assert any(p.parent.name == "restore" for p in out), out
    peak = status("VmHWM:")
else:  # "import": `hub import FILE`
    resting = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")
    res = hub.import_file(s, f)
    assert res.outcome.status == "applied", res.outcome.message
    peak = status("VmHWM:")
print(resting, peak)
"""


def memory(
    root: Path, quick: bool, baseline_python: str | None, runs: int, only: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Peak RSS (VmHWM) of an HTTP push, a restore export and a file import, each in a fresh process.

    Bundles: two photo-heavy ones (13.5 MB: 5 photos; 133.6 MB: 40 photos, as
    `bench_import_vs_sha256sum` builds them; `quick`: the small one only) and
    an event-heavy one (30,000 events, no photos). "push": `hub serve` on a
    socket in the measured process, curl uploading the file (`-T`, streamed);
    "restore": `hub export --restore` of that bundle alone for a replacement
    laptop; "import": `hub import FILE`. With `baseline_python`, an
    interpreter whose `wardcrf` is the code before (e.g. a venv over a
    checkout of main), every measurement alternates with the same one run by
    it, the order flipped each round; each run gets a fresh copy of the hub.
    `only` picks some of push, restore, import.
    """
    from wardcrf.sync import bundle, hub

    hs_site, hs = _hub(root / "pristine")
    hub_keys = devicekeys.load(hs.store, hs.ctx.device)
    new_keys = devicekeys.generate("NEWLAP01")  # the replacement laptop a restore is for
    _register(hs, new_keys, "WUH01")
    cases: list[tuple[str, Path]] = []
    shapes = [(5, 2_000_000, 200)] if quick else [(5, 2_000_000, 200), (40, 2_500_000, 200)]
    shapes.append((0, 0, 30_000))
    for n, (n_photos, size, n_events) in enumerate(shapes):
        keys = devicekeys.generate(f"MEMDEV{n:02d}")
        _register(hs, keys, "WUH01")
        photos = {}
        for i in range(n_photos):
            data = _jpeg(size, 1000 * n + i)
            photos[bundle.sha256(data)] = ("jpg", data)
        lines = _chain(keys.device, "WUH01", n_events, photos=list(photos))
        manifest = _manifest(keys, "WUH01", lines, list(photos), [hub_keys.age_recipient])
        name, cipher, sig = bundle.seal(manifest, lines, photos, keys.sign_secret)
        f = root / name
        f.write_bytes(cipher)
        (root / (name + ".minisig")).write_bytes(sig)
        cases.append((f"{len(cipher) / 1e6:.1f} MB, {n_photos} photos, {n_events} events", f))
        del photos, cipher, lines
    hs.store.checkpoint()
    hs.close()
    # A restore needs its bundle kept at the hub: per bundle, a copy of the hub that applied it
    # (and only it: `hub export --restore` sends every kept bundle of the site).
    kept: dict[Path, Path] = {}
    for n, (_label, f) in enumerate(cases):
        kept[f] = root / f"kept{n}" / "hub"
        shutil.copytree(hs_site.data_dir, kept[f])
        ks = Site.open(kept[f]).unlock("admin", PASSWORD)
        try:
            assert hub.import_file(ks, f).outcome.status == "applied"
            ks.store.checkpoint()
        finally:
            ks.close()
    pythons = [("ours", sys.executable)] + ([("before", baseline_python)] if baseline_python else [])
    rows = []
    for what in only or ("push", "restore", "import"):
        for label, f in cases:
            seen: dict[str, list[tuple[int, int]]] = {k: [] for k, _ in pythons}
            for r in range(runs):
                for key, py in pythons if r % 2 == 0 else list(reversed(pythons)):
                    run_dir = root / f"run-{what}-{key}-{r}"
                    src = kept[f] if what == "restore" else hs_site.data_dir
                    shutil.copytree(src, run_dir / "hub")
                    out = subprocess.run(
                        [py, "-c", _MEMORY_SCRIPT, what, str(run_dir / "hub"), str(f), PASSWORD,
                         new_keys.device, str(run_dir / "stick")],
                        check=True, capture_output=True, text=True,
                    ).stdout.split()  # fmt: skip
                    seen[key].append((int(out[-2]), int(out[-1])))
                    shutil.rmtree(run_dir)
            size = f.stat().st_size
            for key, got in seen.items():
                peaks = [p for _, p in got]
                rows.append(
                    {
                        "name": f"peak RSS, {what}, {label} [{key}]",
                        "value": max(peaks) / 1e6,
                        "unit": "MB",
                        "baseline": size / 1e6,
                        "ratio": max(peaks) / size,
                        "target": "the bundle is not held: peak − resting well under the bundle",
                        "runs": [(round(a / 1e6, 1), round(b / 1e6, 1)) for a, b in got],
                        "load": loadavg(),
                    }
                )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    features.install()  # a benchmark is a program: it installs the features before it opens a site
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        for fn in (
            bench_export_vs_age,
            bench_import_vs_sha256sum,
            bench_incremental_export,
            bench_hub_many_devices,
        ):
            sub = root / fn.__name__
            sub.mkdir()
            rows += fn(sub, quick)
    return rows


if __name__ == "__main__" and sys.argv[1:2] == ["memory"]:
    # python bench/bench_sync.py memory [--quick] [--runs N] [--baseline-python PY] [--only push,restore,import]
    features.install()
    args = sys.argv[2:]
    base = args[args.index("--baseline-python") + 1] if "--baseline-python" in args else None
    n_runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 2
    only = tuple(args[args.index("--only") + 1].split(",")) if "--only" in args else ()
    with tempfile.TemporaryDirectory(prefix="bench-sync-memory-") as tmp:
        for row in memory(Path(tmp), "--quick" in args, base, n_runs, only):
            print(
                f"{row['name']}: peak {row['value']:,.1f} MB | bundle {row['baseline']:,.1f} MB "
                f"| runs (resting, peak) MB {row['runs']} | load {row['load']}",
                flush=True,
            )
elif __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['name']}: {row['value']:,.3f} {row['unit']} | baseline {row['baseline']:,.3f} "
            f"| ratio {row['ratio']:.2f} | target {row['target']}"
        )
