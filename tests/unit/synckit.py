"""Helpers for the sync tests: wards and hubs on real files, wired together."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wardcrf.sync import bundle, hub, registry
from wardcrf.sync.cards import Card

from wardcrf import canonical, users
from wardcrf.site import Session, Site

PASSWORD = "test-password-1"


def first_manifest(
    *,
    device: str,
    key_id: str,
    recipients: list[str],
    count: int,
    chain_last: str,
    site: str = "WUH01",
    to: str = "HUB00001",
    photos: tuple[str, ...] = (),
    evidence: tuple[str, ...] | None = None,
    created: str = "2026-01-01T00:00:00.000+00:00",
) -> bytes:
    """A device's first events bundle's manifest line (`bundle_seq` 1, its chain from genesis), as `bundle.seal` takes it.

    One spelling for the tests that seal bundles by hand: a manifest key the format adds or renames is
    changed here once. `count` and `chain_last` are given, not computed from lines, so a test can seal an
    events file that is deliberately not a chain. `evidence` None leaves the key out (a bundle citing none).
    """
    m: dict[str, object] = {
        "format": bundle.FORMAT,
        "kind": "events",
        "site": site,
        "device": device,
        "key_id": key_id,
        "bundle_seq": 1,
        "prev_manifest": "",
        "events": {"first": 1, "last": count, "count": count},
        "chain_first_prev": canonical.GENESIS,
        "chain_last": chain_last,
        "protocol": None,
        "created": created,
        "recipients": sorted(recipients),
        "photos": sorted(photos),
        "to": to,
    }
    if evidence is not None:
        m["evidence"] = sorted(evidence)
    return (canonical.dumps(m) + "\n").encode()


def make_ward(root: Path, name: str = "lap1", site: str = "WUH01") -> Site:
    res = Site.init(root / name, site=site, device_name=name, admin="admin", password=PASSWORD)
    return res.site


def make_hub(root: Path, protocol_file: object = None) -> Site:
    """A hub (its protocol the shipped default, or `protocol_file`: the trial its wards run) with a coordinator."""
    res = hub.init(root / "hub", admin="admin", password=PASSWORD, protocol_file=protocol_file)
    s = res.site.unlock("admin", PASSWORD)
    try:
        users.add_user(s, "coordinator", "Coco Ordinator", "coordinator", PASSWORD)
        users.add_user(s, "dsmg", "Dee Smg", "dsmg", PASSWORD)
    finally:
        s.close()
    return res.site


def open_(site: Site, user: str = "admin") -> Session:
    return Site.open(site.data_dir).unlock(user, PASSWORD)


def card_of(site: Site) -> Card:
    s = open_(site)
    try:
        return registry.own_card(s.store)
    finally:
        s.close()


def connect(ward: Site, hub_site: Site, url: str | None = None) -> None:
    """Register the ward's card at the hub and make the ward trust the hub."""
    wcard, hcard = card_of(ward), card_of(hub_site)
    h = open_(hub_site)
    try:
        registry.register_device(h, wcard)
    finally:
        h.close()
    w = open_(ward)
    try:
        registry.set_hub(w, hcard, url)
    finally:
        w.close()


def add_notes(site: Site, n: int, text: str = "note") -> None:
    s = open_(site)
    try:
        with s.store.transaction():
            for i in range(n):
                s.append(type="note.added", subject=f"site:{s.ctx.site}", body={"text": f"{text} {i}"})
    finally:
        s.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WARDCRF_MAIN = "import scratch_events; from wardcrf.cli import main; main()"
"""`python -c` code for a `wardcrf` subprocess that knows the tests' scratch event types."""


def subprocess_env(user: str = "admin") -> dict[str, str]:
    """The environment for a `WARDCRF_MAIN` subprocess (finds `scratch_events`, signs in)."""
    tests = str(Path(__file__).resolve().parents[1])
    return {
        **os.environ,
        "WARDCRF_USER": user,
        "WARDCRF_PASSWORD": PASSWORD,
        "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p),
    }


def serve_process(hub_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """`wardcrf hub serve` on loopback in a subprocess, with the tests' scratch event types declared
    (`extra`: more options, e.g. ``--pool-size 2``)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            WARDCRF_MAIN,
            "hub",
            "serve",
            "--data-dir",
            str(hub_dir),
            "--port",
            str(port),
            *extra,
        ],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class HubServer:
    """`wardcrf hub serve` in a subprocess on loopback; stops by itself when the test ends."""

    def __init__(self, hub_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = serve_process(hub_dir, self.port, *extra)
        self.wait_ready()

    def wait_ready(self) -> None:
        import time

        import httpx

        for _ in range(200):  # bounded: 20 s
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub serve exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                httpx.get(self.url + "/v1/ping", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("hub serve did not answer within 20 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=10)
