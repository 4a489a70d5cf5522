"""Photo benchmarks: import of a 24-megapixel JPEG, its peak memory, hash+encrypt throughput.

Baselines measured in the same run on the same file:
- ``sha256sum FILE`` (coreutils) — the cost of just hashing the bytes;
- a naive import: Pillow full decode (``Image.open().load()``) plus thumbnail,
  what validation would cost without draft mode;
- the same wardcrf store path on an *unencrypted* database, so the
  encryption's own share shows.

Targets (issue 4): import ≤ 1.0 s, peak memory ≤ 300 MB, hashing+encrypting
within 2x of sha256sum.

    python bench/bench_photos.py [--quick]
"""

from __future__ import annotations

import hashlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from wardcrf import users
from wardcrf.site import Site
from wardcrf.store import Store

PASSWORD = "bench-password-1"
WIDTH, HEIGHT = 6000, 4000  # 24 megapixels


def document_photo(seed: int = 0) -> bytes:
    """A phone-like 24 MP JPEG of a paper form: lit page, lines of 'text', sensor noise, EXIF."""
    from PIL import Image, ImageDraw

    rnd = __import__("random").Random(seed)
    page = Image.linear_gradient("L").rotate(90).resize((WIDTH, HEIGHT)).point(lambda v: 170 + v // 4)
    # Sensor noise at a phone's level: a 24 MP shot of a page is ~7 MB at quality 92.
    noise = Image.effect_noise((WIDTH, HEIGHT), 20)
    page = Image.blend(page, noise, 0.3)
    draw = ImageDraw.Draw(page)
    y = 300
    while y < HEIGHT - 300:
        x = 400
        while x < WIDTH - 600:
            w = rnd.randint(40, 260)
            draw.rectangle((x, y, x + w, y + 38), fill=rnd.randint(20, 70))
            x += w + rnd.randint(25, 60)
        y += rnd.randint(80, 120)
    rgb = Image.merge(
        "RGB", (page, page.point(lambda v: max(0, v - 4)), page.point(lambda v: max(0, v - 10)))
    )
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 12"
    exif.get_ifd(0x8769)[0x9003] = "2020:03:16 09:12:00"
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=92, exif=exif)
    return out.getvalue()


def variant(jpeg: bytes, n: int) -> bytes:
    """The same photo with a different comment segment: new hash, same pixels."""
    text = f"bench run {n}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def _median(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _sha256sum(path: Path, n: int) -> float:
    def once(_: int) -> None:
        subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)

    return _median(once, n)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, pathlib
    from wardcrf.site import Site
    from wardcrf.photos import api
    import PIL.Image  # loaded before the reset, like in a running app

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    s = Site.open(pathlib.Path(sys.argv[1])).unlock("clinician", sys.argv[3])
    resting = status("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to now
    api.import_photo(s, pathlib.Path(sys.argv[2]))
    print(resting, status("VmHWM:"))
    """
)


def _cipher_cost(base: bytes, n: int) -> tuple[float, float]:
    """Median seconds to store one photo in an encrypted and in a plain store, both in RAM."""
    import os as _os

    from wardcrf.photos import store as pstore

    ram = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=ram) as tmp:
        stores = {
            "enc": Store(Path(tmp) / "enc.db", _os.urandom(32)),
            "plain": Store(Path(tmp) / "plain.db", None),
        }
        times: dict[str, list[float]] = {"enc": [], "plain": []}
        for st in stores.values():
            st.migrate()
        for i in range(n):
            for name, st in stores.items():  # interleaved: drift hits both alike
                blob = variant(base, 60_000 + i * 2 + (name == "enc"))
                sha = hashlib.sha256(blob).hexdigest()
                t = time.perf_counter()
                with st.transaction():
                    pstore.put_blob(st, sha, blob)
                times[name].append(time.perf_counter() - t)
        for st in stores.values():
            st.close()
    return statistics.median(times["enc"]), statistics.median(times["plain"])


def run(quick: bool = False) -> list[dict]:
    from PIL import Image
    from wardcrf.photos import api
    from wardcrf.photos import store as pstore

    n = 3 if quick else 7
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base = document_photo()
        photo = tmp_path / "IMG_0001.JPG"
        photo.write_bytes(base)
        size_mb = len(base) / 1e6
        init = Site.init(
            tmp_path / "site", site="BENCH", device_name="bench", admin="admin", password=PASSWORD
        )
        admin = init.site.unlock("admin", PASSWORD)
        users.add_user(admin, "clinician", "Clinician", "clinician", PASSWORD)
        admin.close()
        s = Site.open(init.site.data_dir).unlock("clinician", PASSWORD)

        # -- import of a 24 MP JPEG: validate (draft decode), hash, encrypt+store, preview, event
        files = []
        for i in range(n):
            f = tmp_path / f"IMG_{i + 2:04d}.JPG"
            f.write_bytes(variant(base, i))
            files.append(f)
        imp = _median(lambda i: api.import_photo(s, files[i]), n)

        def naive(_: int) -> None:
            with Image.open(photo) as im:
                im.load()
                im.thumbnail((1280, 1280))

        naive_t = _median(naive, n)
        rows.append(
            {
                "name": f"import 24 MP JPEG ({size_mb:.1f} MB) vs naive full decode",
                "value": imp,
                "unit": "s",
                "baseline": naive_t,
                "ratio": imp / naive_t,
                "target": "≤ 1.0 s",
            }
        )

        # -- peak memory of the import, in a fresh process
        probe = tmp_path / "probe.JPG"
        probe.write_bytes(variant(base, 10_000))
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_SCRIPT, str(init.site.data_dir), str(probe), PASSWORD],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        resting, peak = float(out[0]), float(out[1])
        rows.append(
            {
                "name": "peak RSS of the importing process vs its RSS before",
                "value": peak,
                "unit": "MB",
                "baseline": resting,
                "ratio": peak / resting,
                "target": "≤ 300 MB",
            }
        )

        # -- hashing + encrypting: sha256 + insert into the SQLCipher store, committed
        sums = _sha256sum(photo, n)
        data = [variant(base, 20_000 + i) for i in range(n)]

        def hash_and_store(store: Store, offset: int):  # type: ignore[no-untyped-def]
            def once(i: int) -> None:
                blob = data[i] if offset == 0 else variant(base, offset + i)
                sha = hashlib.sha256(blob).hexdigest()
                with store.transaction():
                    pstore.put_blob(store, sha, blob)

            return once

        enc = _median(hash_and_store(s.store, 0), n)
        hash_t = _median(lambda i: hashlib.sha256(data[i]).hexdigest(), n)
        plain = Store(tmp_path / "plain.db", None)
        plain.migrate()
        plain_t = _median(hash_and_store(plain, 40_000), n)
        plain.close()
        # What hashing + encrypting costs: the hash, plus what the encrypted
        # store costs beyond the identical unencrypted one (SQLCipher's AES +
        # HMAC per page). Both measured in RAM (tmpfs) and interleaved, so disk
        # noise does not swamp the difference. The durable write itself (WAL +
        # fsync + checkpoint) is storage, paid by any design, and not something
        # sha256sum does: it shows in the committed rows below.
        enc_ram, plain_ram = _cipher_cost(base, n * 2)
        crypto = hash_t + max(enc_ram - plain_ram, 0.0)
        rows.append(
            {
                "name": "hashing + encrypting (sha256 + page encryption) vs sha256sum",
                "value": crypto,
                "unit": "s",
                "baseline": sums,
                "ratio": crypto / sums,
                "target": "≤ 2x",
            }
        )
        rows.append(
            {
                "name": "sha256 + encrypted store, committed (fsync'd WAL + checkpoint) vs sha256sum",
                "value": enc,
                "unit": "s",
                "baseline": sums,
                "ratio": enc / sums,
                "target": "",
            }
        )
        rows.append(
            {
                "name": "same store path on unencrypted SQLite vs sha256sum",
                "value": plain_t,
                "unit": "s",
                "baseline": sums,
                "ratio": plain_t / sums,
                "target": "",
            }
        )
        shas = [hashlib.sha256(d).hexdigest() for d in data]
        read = _median(lambda i: api.read_original(s.store, shas[i]), n)
        rows.append(
            {
                "name": "read_original (decrypt + verify hash) vs sha256sum",
                "value": read,
                "unit": "s",
                "baseline": sums,
                "ratio": read / sums,
                "target": "",
            }
        )
        s.close()
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['name']}: {row['value']:.3f} {row['unit']} (baseline {row['baseline']:.3f}, "
            f"ratio {row['ratio']:.2f}, target {row['target']})"
        )
    sys.stdout.flush()
    os._exit(0)
