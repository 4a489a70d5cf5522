"""Randomization benchmarks: one allocation on the ward, and making a list at the hub.

`randomize` is what a clinician waits for at enrollment: `service.allocate`
(role check, the next free entry of the stratum, age-decrypting the list key
with the laptop's identity, deriving and opening one entry, checking its
digest, appending `randomization.allocated` with its projection, in one
transaction on the SQLCipher store). The baseline does the same cryptography
without the store: the same age decryption, key derivation, AEAD opening and
digest check of the same entry. The two run alternately in one loop
(`measure.alternate`). Making a list (generate, seal every entry, sign,
append) is timed once per size, beside generating the plaintext list alone.

Set-up (not timed): a hub and a ward laptop on real files, registered with
each other; an investigator's first sign-in on the ward makes the laptop's
unblinding key, which a real ward bundle takes to the hub (a blinded list is
sealed to it); the list delivered in a real hub bundle; participants inserted
into the ward's participants table directly (consent is not what is measured).

    python bench/run.py --only randomization [--quick]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import alternate, once, row, single_row

PASSWORD = "bench-password-1"


def _setup(root: Path, per_stratum: int):
    from wardcrf.sync import hub, registry, ward

    from wardcrf import users
    from wardcrf.engine import model
    from wardcrf.randomization import service
    from wardcrf.site import Site

    h = hub.init(root / "hub", admin="admin", password=PASSWORD).site
    w = Site.init(root / "ward", site="WUH01", device_name="lap1", admin="admin", password=PASSWORD).site
    hs = h.unlock("admin", PASSWORD)
    users.add_user(hs, "coordinator", "Coco", "coordinator", PASSWORD)
    ws = w.unlock("admin", PASSWORD)
    users.add_user(ws, "clinician", "Clin", "clinician", PASSWORD)
    users.add_user(ws, "investigator", "Inv", "investigator", PASSWORD)
    wcard, hcard = registry.own_card(ws.store), registry.own_card(hs.store)
    registry.register_device(hs, wcard)
    registry.set_hub(ws, hcard, None)
    w.unlock("investigator", PASSWORD).close()  # makes the laptop's unblinding key (wardcrf.unblindkeys)
    outbound = root / "to-hub"
    outbound.mkdir()
    for f in ward.export(ws, outbound).files:
        if f.name.endswith(".tar.age"):
            assert hub.import_file(hs, f).ok
    hs.close()
    hs = h.unlock("coordinator", PASSWORD)
    made, t_make = None, None
    sample, made = once(
        lambda: service.make_list(hs, model.shipped("palm007.toml"), "WUH01", wcard.device, per_stratum)
    )
    t_make = sample
    stick = root / "stick"
    stick.mkdir()
    files = hub.outbound_files(hs, wcard.device, stick)
    hs.close()
    for f in files:
        ward.import_file(ws, f)
    n = int(ws.store.scalar("SELECT COUNT(*) FROM rand_entries"))
    with ws.store.transaction():
        for i in range(1, n + 1):
            ws.store.execute("INSERT INTO participants (id, number) VALUES (?, ?)", (f"WUH01-{i:04d}", i))
    ws.close()
    return w, made, t_make, n


def run(quick: bool = False) -> list[dict]:
    from wardcrf import features

    features.install()  # a benchmark is a program: it installs the features before it opens a site
    from wardcrf import devicekeys
    from wardcrf.engine import model
    from wardcrf.randomization import design, lists, sealing, service

    per_stratum = 40 if quick else 400
    repeat = 15 if quick else 60
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        w, _made, t_make, n = _setup(Path(tmp), per_stratum)
        clin = w.unlock("clinician", PASSWORD)
        store = clin.store
        keys = devicekeys.load(store, clin.ctx.device)
        assert keys is not None
        lst = store.rows("SELECT * FROM rand_lists")[0]
        entries = store.rows("SELECT * FROM rand_entries ORDER BY position")
        pids = [f"WUH01-{i:04d}" for i in range(1, n + 1)]
        taken = iter(pids)

        def ours(_i: int) -> None:
            service.allocate(clin, next(taken))

        def base(i: int) -> None:
            e = entries[i % len(entries)]
            key = sealing.open_key(lst["list_key"], keys.age_identity, "list key")
            sealing.open_entry(
                key, "entry", lst["list_id"], e["stratum"], e["position"], e["sealed"], e["digest"]
            )

        pair = alternate(ours, base, min(repeat, n - 1))
        rows.append(
            row(
                "randomize one participant (blinded, kit number)",
                pair,
                unit="ms",
                scale=1000,
                baseline_name="same age + HKDF + AEAD + digest, no store",
            )
        )
        clin.close()
        rows.append(
            single_row(
                f"hub: make, seal and sign a list of {n} entries",
                t_make,
                unit="ms",
                scale=1000,
                note="once, at the hub",
            )
        )
        d = design.design_of(model.shipped("palm007.toml"))
        gen = alternate(
            lambda _i: lists.generate(d, "WUH01", per_stratum, lists.new_seed(), "L"),
            lambda _i: json.dumps([{"x": i} for i in range(n)]),
            5,
        )
        rows.append(
            row(
                f"generate the plaintext list ({n} entries)",
                gen,
                unit="ms",
                scale=1000,
                baseline_name=f"json.dumps of {n} small objects",
            )
        )
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
