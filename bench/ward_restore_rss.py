"""Peak RSS of a replacement laptop's USB restore (`wardcrf sync restore --from`) of a photo-heavy bundle.

`/usr/bin/time -v` of the real command, in a fresh process each time, on a
fresh copy of the same provisioned laptop; two package trees alternated run
by run (e.g. the code before and after a change), and the floor beside them:
the same command's sign-in alone (`wardcrf sync status`, scrypt included).

    python bench/ward_restore_rss.py setup DIR [--photos 40] [--side 1000]
    python bench/ward_restore_rss.py compare DIR OLD_TREE NEW_TREE [--rounds 3]

`setup` makes a hub, a ward laptop with one consent record citing `--photos`
noise PNGs of `--side`² pixels (about 3 MB each at 1000; they do not
compress), exports it as one bundle and imports it at the hub, provisions a
replacement laptop and registers it, and writes the hub's USB export for it
(`hub export --restore`) to DIR/stick. A tree is a folder holding a
`wardcrf` package (with `sync/`, `photos/`, `screens/` inside, as installed):
`compare` runs ``python -c "from wardcrf.cli import main; main()"`` with it
first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PASSWORD = "bench-password-1"


def _noise_png(seed: int, side: int) -> bytes:
    import io

    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def setup(root: Path, photos: int, side: int) -> None:
    from wardcrf.photos import importing
    from wardcrf.sync import hub, registry, restore, ward

    from wardcrf import features, records, users
    from wardcrf.evidence import reference
    from wardcrf.site import Site

    features.install()
    root.mkdir(parents=True, exist_ok=False)
    h = hub.init(root / "hub", admin="admin", password=PASSWORD).site
    w = Site.init(root / "ward", site="WUH01", device_name="lap1", admin="admin", password=PASSWORD).site
    hs = h.unlock("admin", PASSWORD)
    ws = w.unlock("admin", PASSWORD)
    try:
        registry.register_device(hs, registry.own_card(ws.store))
        registry.set_hub(ws, registry.own_card(hs.store), None)
        users.add_user(ws, "clinician", "Cli Nician", "clinician", PASSWORD)
        old = ws.ctx.device
    finally:
        ws.close()
    c = w.unlock("clinician", PASSWORD)
    try:
        shas = []
        for i in range(photos):
            shas.append(importing.import_bytes(c, f"consent{i}.png", _noise_png(i, side)).sha256)
        records.submit(c, "consent", {"photo": [reference(s) for s in shas]}, subject="participant:WUH01-001")
    finally:
        c.close()
    ws = w.unlock("admin", PASSWORD)
    try:
        out = ward.export(ws, _mkdir(root / "usb"), limit=512 * 1024 * 1024).files
    finally:
        ws.close()
    for f in out:
        res = hub.import_file(hs, f)
        assert res.outcome.status == "applied", res.outcome.message
    _res, card = restore.provision(
        root / "pristine",
        site="WUH01",
        device_name="lap1b",
        admin="admin",
        password=PASSWORD,
        hub_card=registry.own_card(hs.store),
    )
    registry.register_device(hs, card, replaces=old)
    hub.outbound_files(hs, card.device, _mkdir(root / "stick"), restore=True)
    hs.close()
    for f in sorted((root / "stick").rglob("*.tar.age")):
        print(f"{f.relative_to(root)}: {f.stat().st_size / 1e6:.1f} MB")


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _peak_kib(tree: Path, args: list[str]) -> tuple[int, float]:
    """(maximum resident set size in KiB, elapsed wall seconds) of one `wardcrf ARGS` under /usr/bin/time -v."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "WARDCRF_USER": "admin",
        "WARDCRF_PASSWORD": PASSWORD,
    }
    res = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", "from wardcrf.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=tree,  # not a checkout: `python -c` puts the working directory first on sys.path
    )
    if res.returncode != 0:
        raise SystemExit(f"wardcrf {' '.join(args)} failed ({res.returncode}): {res.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))  # type: ignore[union-attr]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", res.stderr).group(1)  # type: ignore[union-attr]
    secs = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    return peak, secs


def _which(tree: Path) -> str:
    code = "import wardcrf.sync.ward as w; print(w.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tree
    ).stdout.strip()


def compare(root: Path, trees: dict[str, Path], rounds: int) -> None:
    stick = root / "stick"
    size = sum(f.stat().st_size for f in (stick / "restore").glob("*.tar.age"))
    for name, tree in trees.items():
        print(f"{name}: {_which(tree)}")
    print(f"restore bundle(s): {size / 1e6:.1f} MB; load before: {os.getloadavg()}")
    rows = []
    for r in range(rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                laptop = Path(tmp) / "laptop"
                shutil.copytree(root / "pristine", laptop)
                floor, _ = _peak_kib(tree, ["sync", "status", "-d", str(laptop)])
                peak, wall = _peak_kib(tree, ["sync", "restore", "-d", str(laptop), "--from", str(stick)])
            load = os.getloadavg()[0]
            rows.append((r + 1, name, peak, floor, wall, load))
            print(
                f"round {r + 1} {name:>4}: restore peak {peak / 1024:.1f} MiB, sign-in alone {floor / 1024:.1f} MiB,"
                f" restore's own {(peak - floor) / 1024:.1f} MiB = {(peak - floor) * 1024 / size:.2f}x the bundle;"
                f" {wall:.1f} s wall; load {load:.2f}",
                flush=True,
            )
    print(f"load after: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("dir", type=Path)
    s.add_argument("--photos", type=int, default=40)
    s.add_argument("--side", type=int, default=1000)
    c = sub.add_parser("compare")
    c.add_argument("dir", type=Path)
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.cmd == "setup":
        setup(a.dir, a.photos, a.side)
    else:
        compare(a.dir, {"old": a.old, "new": a.new}, a.rounds)


if __name__ == "__main__":
    main()
