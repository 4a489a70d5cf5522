"""A replacement laptop provisioned from the hub (`wardcrf sync restore`).

Two steps, because the hub must know the new laptop's keys before it can
encrypt anything to it:

1. `provision`: a new data directory with a new device id and new keys for
   the existing site, trusting the hub's card; prints the new card. The
   coordinator registers it with `hub register-device CARD --replaces OLD`,
   which retires the old device (its bundles are refused from then on).
2. `complete`: the hub's chain first (it carries the device registry), then
   every original bundle of the site's devices, re-encrypted to the new
   laptop by the hub but still signed inside by the device that made it, so
   events and photos come back verified end to end.

A laptop that dies in the ward loses only what it never exported.
"""

from __future__ import annotations

from pathlib import Path

from wardcrf.errors import Refused
from wardcrf.site import DEFAULT_ZONE, InitResult, Session, Site

from . import registry, ward
from .cards import Card
from .hub import RESTORE_ORDER, read_sig
from .transport import Client


def provision(
    data_dir: Path,
    *,
    site: str,
    device_name: str,
    admin: str,
    password: str,
    hub_card: Card,
    url: str | None = None,
    zone_name: str = DEFAULT_ZONE,
) -> tuple[InitResult, Card]:
    res = Site.init(
        data_dir, site=site, device_name=device_name, admin=admin, password=password, zone_name=zone_name
    )
    s = res.site.unlock(admin, password)
    try:
        registry.set_hub(s, hub_card, url)
        return res, registry.own_card(s.store)
    finally:
        s.close()


def complete(session: Session, *, client: Client | None = None, from_dir: Path | None = None) -> list[str]:
    """Bring the site's events and photos from the hub (HTTP) or from a directory (USB)."""
    from . import service

    lines: list[str] = []
    if client is not None:
        lines += service.pull(session, client)
        items = client.restore_list(session.ctx.device)
        if not items:
            raise Refused(
                "the hub holds no bundles of this site for this laptop (is it registered with --replaces?)"
            )
        spool = session.site.data_dir / "sync"
        for item in items:
            # Streamed into this laptop's spool as it arrives, then verified from there: never held whole.
            path, sig = client.restore_fetch_into(
                session.ctx.device, item["device"], int(item["bundle_seq"]), spool
            )
            try:
                lines.append(
                    _apply(session, path, sig, f"{item['device']} bundle {item['bundle_seq']}", received=True)
                )
            finally:
                path.unlink(missing_ok=True)  # kept (moved under applied/) or refused: never left behind
        return lines
    if from_dir is None:
        raise Refused(
            "restore needs a hub URL or a directory the hub exported for this laptop (`wardcrf hub export --restore`)"
        )
    for f in sorted(Path(from_dir).glob("*.json")):
        lines.append(ward.import_file(session, f))
    for f in sorted(Path(from_dir).glob("*.tar.age")):
        lines.append(ward.import_file(session, f))
    for f in _in_hub_order(Path(from_dir) / "restore"):
        # Streamed from the stick into the laptop's spool and verified there: never read whole.
        lines.append(_apply(session, f, read_sig(f), f.name))
    return lines


def _in_hub_order(folder: Path) -> list[Path]:
    """The original bundles in the order the hub applied them (its `ORDER` file), then any it does not list.

    Not by name (device, then seq): a laptop that was itself restored recorded under a protocol version
    another device's bundle loaded, so that bundle must come first, as it did at the hub. A line naming no
    bundle file here is skipped; every bundle is verified as it is applied, whatever the order says.
    """
    files = {f.name: f for f in folder.glob("*.tar.age")}
    listed: list[Path] = []
    order = folder / RESTORE_ORDER
    if order.is_file() and order.stat().st_size <= 64 * len(files) + 4096:
        for name in order.read_text("utf-8", errors="replace").splitlines():
            f = files.pop(name.strip(), None)
            if f is not None:
                listed.append(f)
    return listed + sorted(files.values())


def _apply(session: Session, cipher: bytes | Path, sig: bytes, what: str, *, received: bool = False) -> str:
    out = ward.apply_restored(session, cipher, sig, what, received=received)
    if not out.ok:
        raise Refused(out.message)
    return out.message
