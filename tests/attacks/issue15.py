"""Issue 15's findings, re-run as attacks against whichever wardcrf is importable.

    python tests/attacks/issue15.py            # one JSON line per attack: {"attack", "result"}

Run from a neutral directory with a venv whose `wardcrf` is the commit under
test (the closing note of issue 15 gives its before/after table: 78f015f,
main before the authority work, against 238672f, main with it; each in its
own venv). It uses only APIs those commits share, falling back where
they differ, and reports what happened in words ("APPLIED", "refused: ...")
rather than pass/fail: the tests in tests/unit are the pass/fail form.
Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3  # noqa: F401  (documented: the attacker's tool)
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wardcrf.sync import hub, registry, ward

from wardcrf import canonical, eventlog, features, users
from wardcrf.clock import HLC, ZERO, iso_utc, now_utc, utc_offset, wall_millis
from wardcrf.site import Site

_TESTS = Path(__import__("wardcrf").__file__).resolve().parents[1] / "tests"
if (_TESTS / "scratch_events.py").exists():  # since the authority table: the tests' `note.added`
    sys.path.insert(0, str(_TESTS))
    __import__("scratch_events")
features.install()  # a program opening sites installs the features first (wardcrf.site)

PASSWORD = "attack-password-1"
ESC = "Eve\x1b]0;owned\x07\x1b[31mRed\u202eevil"
RESULTS: list[dict[str, str]] = []


def attack(name: str) -> Callable[[Callable[[Path], str]], Callable[[Path], str]]:
    def wrap(fn: Callable[[Path], str]) -> Callable[[Path], str]:
        root = Path(tempfile.mkdtemp(prefix="att-"))
        try:
            result = fn(root)
        except BaseException as exc:
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            result = (
                f"EXCEPTION {type(exc).__name__}: {str(exc)[:160]} (at {Path(tb.filename).name}:{tb.lineno})"
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)
        RESULTS.append({"attack": name, "result": " ".join(str(result).split())[:300]})
        print(json.dumps(RESULTS[-1], ensure_ascii=True), flush=True)
        return fn

    return wrap


# -- helpers (the same as tests/unit/synckit.py and forge.py, inlined) --------------------------


def open_(site: Site, user: str = "admin") -> Any:
    return Site.open(site.data_dir).unlock(user, PASSWORD)


def make_ward(root: Path, name: str = "lap1", site: str = "WUH01") -> Site:
    s = Site.init(root / name, site=site, device_name=name, admin="admin", password=PASSWORD).site
    ss = open_(s)
    try:
        for u, role in (("clinician", "clinician"), ("clinician2", "clinician"), ("clinician3", "clinician"),
                        ("pharmacist", "pharmacist"), ("auditor", "auditor")):  # fmt: skip
            users.add_user(ss, u, u.title(), role, PASSWORD)
    finally:
        ss.close()
    return s


def make_hub(root: Path) -> Site:
    s = hub.init(root / "hub", admin="admin", password=PASSWORD).site
    ss = open_(s)
    try:
        users.add_user(ss, "coordinator", "Coco", "coordinator", PASSWORD)
    finally:
        ss.close()
    return s


def connect(w: Site, h: Site) -> None:
    ws, hs = open_(w), open_(h)
    try:
        registry.register_device(hs, registry.own_card(ws.store))
        registry.set_hub(ws, registry.own_card(hs.store), None)
    finally:
        ws.close()
        hs.close()


def add_notes(site: Site, n: int, text: str = "note") -> None:
    s = open_(site)
    try:
        with s.store.transaction():
            for i in range(n):
                s.append(type="note.added", subject=f"site:{s.ctx.site}", body={"text": f"{text} {i}"})
    finally:
        s.close()


def append_raw(site: Site, type_: str, body: dict[str, Any], *, subject: str | None = None,
               user: str | None = "admin", role: str | None = "admin") -> str:  # fmt: skip
    """A key holder's line at the head of the laptop's own chain: no service, no check."""
    s = open_(site)
    try:
        store, ctx = s.store, s.ctx
        with store.transaction():
            seq, prev = eventlog.head(store, ctx.device)
            row = store.one("SELECT hlc FROM chain_heads WHERE device = ?", (ctx.device,))
            now = now_utc()
            hlc = max(HLC.decode(row[0]) if row else ZERO, ZERO).tick(wall_millis(now))
            fields = {"amends": None, "body": body, "device": ctx.device, "hlc": hlc.encode(),
                      "id": f"{ctx.device}-{seq + 1}", "protocol": s.protocol, "reason": None, "role": role,
                      "seq": seq + 1, "site": ctx.site, "subject": subject, "ts": iso_utc(now), "type": type_,
                      "tz": utc_offset(now, ctx.zone), "user": user, "zone": ctx.zone}  # fmt: skip
            event = eventlog.Event.from_line(canonical.event_line(prev, fields))
            eventlog._write(store, event, projectors=[])
        return event.id
    finally:
        s.close()


def export(w: Site, to: Path, **kw: Any) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return list(ward.export(s, to, **kw).files)
    finally:
        s.close()


def hub_import(h: Site, f: Path) -> str:
    s = open_(h)
    try:
        out = hub.import_file(s, f).outcome
        return f"{out.status.upper()}: {out.message}"
    except Exception as exc:
        return f"refused ({type(exc).__name__}): {exc}"
    finally:
        s.close()


def scalar(site: Site, sql: str, params: tuple[Any, ...] = ()) -> Any:
    s = open_(site)
    try:
        return s.store.scalar(sql, params)
    finally:
        s.close()


def cli(*args: str, data_dir: Path, user: str = "admin", columns: str = "80") -> tuple[int, str, str]:
    from wardcrf.cli import main

    env = {"WARDCRF_DATA_DIR": str(data_dir), "WARDCRF_USER": user, "WARDCRF_PASSWORD": PASSWORD,
           "COLUMNS": columns, "WARDCRF_NEW_PASSWORD": PASSWORD}  # fmt: skip
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    with contextlib.suppress(ImportError):
        from wardcrf.cli import common

        for c in (common.console, common.err_console):
            c._width = None  # read COLUMNS again
    out, err, code = io.StringIO(), io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


def pair(root: Path) -> tuple[Site, Site]:
    h, w = make_hub(root), make_ward(root)
    connect(w, h)
    return w, h


def consented(w: Site, pid: str, signers: int = 3) -> None:
    consent = append_raw(w, "record.submitted",
                         {"form": "consent", "data": {"consenter": "participant"}, "creates_participant": True},
                         subject=f"participant:{pid}", role="clinician", user="clinician")  # fmt: skip
    for signer in ("clinician", "clinician2", "clinician3")[:signers]:
        append_raw(w, "signature.applied",
                   {"target": consent, "signed_hash": "0" * 64, "meaning": "witnessed", "signer": signer,
                    "full_name": signer}, subject=f"participant:{pid}", role="clinician", user=signer)  # fmt: skip


def record(w: Site, pid: str, form: str, data: dict[str, Any]) -> None:
    append_raw(w, "record.submitted", {"form": form, "data": data}, subject=f"participant:{pid}",
               role="clinician", user="clinician")  # fmt: skip


def dangerous(text: str) -> bool:
    return any(c in text for c in "\x1b\x9b\u202e\u200b\x07")


# -- the attacks -----------------------------------------------------------------------------


@attack("1 ward bundle carries hub.device_registered + dsmg.decision for another site")
def _a1(root: Path) -> str:
    h = make_hub(root)
    w1, w2 = make_ward(root, "lap1", "WUH01"), make_ward(root, "lap2", "XYZ02")
    connect(w1, h)
    connect(w2, h)
    rogue = make_ward(root, "rogue", "XYZ02")
    rs = open_(rogue)
    card = registry.own_card(rs.store).as_dict()
    rs.close()
    lap2 = open_(w2).ctx.device
    append_raw(w1, "hub.device_registered", {**card, "replaces": lap2}, subject=f"device:{card['device']}")
    append_raw(w1, "dsmg.decision", {"site": "XYZ02", "decision": "stop enrolment", "detail": "forged"},
               subject="site:XYZ02")  # fmt: skip
    res = " | ".join(hub_import(h, f) for f in export(w1, root / "usb"))
    status = scalar(h, "SELECT status FROM sync_devices WHERE device = ?", (lap2,))
    return f"{res[:150]} -> genuine XYZ02 laptop now {status}"


@attack("2 an auditor's session holds the raw database key or the signing secret")
def _a2(root: Path) -> str:
    w = make_ward(root)
    s = open_(w, "auditor")
    try:
        found = []
        if getattr(s, "key", b""):
            found.append("session.key = raw database key")
        from wardcrf import devicekeys

        if hasattr(devicekeys, "load"):
            try:
                keys = devicekeys.load(s.store, s.ctx.device)
                if keys is not None and getattr(keys, "sign_secret", None):
                    found.append("devicekeys.load -> signing secret")
            except Exception as exc:
                found.append(f"load refused: {exc}")
        if hasattr(devicekeys, "signer"):
            try:
                devicekeys.signer(s)
                found.append("devicekeys.signer(auditor) -> a signer")
            except Exception as exc:
                found.append(f"signer refused: {str(exc)[:80]}")
        return "; ".join(found) or "neither reachable"
    finally:
        s.close()


@attack("3 a malformed event body in one of three bundles (hub import)")
def _a3(root: Path) -> str:
    h = make_hub(root)
    ws = [make_ward(root, n, s) for n, s in (("lap1", "WUH01"), ("lap3", "WUH01"), ("lap2", "XYZ02"))]
    for w in ws:
        connect(w, h)
        add_notes(w, 2)
    append_raw(ws[1], "record.submitted",
               {"form": "coldchain.reading", "data": {"unit_id": "FRZ-1", "at": "yesterday-ish", "temp_c": -20.0,
                                                      "low_c": -25.0, "high_c": -15.0}},
               subject="unit:FRZ-1", role="pharmacist")  # fmt: skip
    files = [export(w, root / f"u{i}")[0] for i, w in enumerate(ws)]
    code, _out, err = cli(
        "hub", "import", *map(str, files), "--data-dir", str(h.data_dir), data_dir=h.data_dir
    )
    applied = scalar(h, "SELECT count(*) FROM sync_applied")
    return f"exit {code}; {applied} of 2 good bundles applied; stderr: {err.strip()[:120]}"


@attack("5a a ward restored from a copy taken before an export re-exports the same events")
def _a5a(root: Path) -> str:
    w, h = pair(root)
    add_notes(w, 3)
    shutil.copytree(w.data_dir, root / "copy")
    first = hub_import(h, export(w, root / "u1")[0])
    shutil.rmtree(w.data_dir)
    shutil.copytree(root / "copy", w.data_dir)
    return f"first {first[:20]}; again: {hub_import(h, export(w, root / 'u2')[0])[:140]}"


@attack("5b the restored ward records more, then exports (a bundle straddling held and new events)")
def _a5b(root: Path) -> str:
    w, h = pair(root)
    add_notes(w, 3)
    shutil.copytree(w.data_dir, root / "copy")
    hub_import(h, export(w, root / "u1")[0])
    shutil.rmtree(w.data_dir)
    shutil.copytree(root / "copy", w.data_dir)
    add_notes(w, 2, "after restore")
    return hub_import(h, export(w, root / "u2")[0])[:160]


@attack("6a rewritten chain: a consent with one signature deleted, then a record")
def _a6a(root: Path) -> str:
    w, h = pair(root)
    consented(w, "WUH01-090", signers=2)
    record(w, "WUH01-090", "vitals", {"timepoint": "baseline"})
    return hub_import(h, export(w, root / "u")[-1])[:160]


@attack("6b rewritten chain: a dose with no enrollment (consent signed by three)")
def _a6b(root: Path) -> str:
    w, h = pair(root)
    consented(w, "WUH01-092")
    record(w, "WUH01-092", "dose", {"dose_number": 1})
    return hub_import(h, export(w, root / "u")[-1])[:160]


@attack("7 the auditor's recipe ships as a script")
def _a7(root: Path) -> str:
    import wardcrf

    script = Path(wardcrf.__file__).resolve().parents[1] / "docs" / "verify-bundle.sh"
    return "docs/verify-bundle.sh present" if script.exists() else "no script: the docs/sync.md recipe only"


def _verify(w: Site) -> str:
    from wardcrf import audit

    s = open_(w)
    try:
        rep = audit.verify(s)
        return "audit verify PASSES" if rep.ok else f"audit verify FAILS: {rep.problems[0][:110]}"
    finally:
        s.close()


@attack("8a swap two events' pos (triggers dropped first)")
def _a8a(root: Path) -> str:
    w = make_ward(root)
    add_notes(w, 3)
    s = open_(w)
    try:
        st = s.store
        for (name,) in st.execute(
            "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='events'"
        ).fetchall():
            st.execute(f"DROP TRIGGER {name}")
        a, b = st.execute("SELECT pos FROM events ORDER BY pos DESC LIMIT 2").fetchall()
        st.execute("UPDATE events SET pos = -1 WHERE pos = ?", (a[0],))
        st.execute("UPDATE events SET pos = ? WHERE pos = ?", (a[0], b[0]))
        st.execute("UPDATE events SET pos = ? WHERE pos = -1", (b[0],))
    finally:
        s.close()
    return _verify(w)


@attack("8b drop the append-only triggers")
def _a8b(root: Path) -> str:
    w = make_ward(root)
    s = open_(w)
    try:
        for (name,) in s.store.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
            s.store.execute(f"DROP TRIGGER {name}")
    finally:
        s.close()
    first = _verify(w)
    back = scalar(w, "SELECT count(*) FROM sqlite_master WHERE type='trigger'")
    return f"{first}; triggers afterwards: {back}"


@attack("8c copy an older wardcrf.db over a newer one")
def _a8c(root: Path) -> str:
    w = make_ward(root)
    add_notes(w, 2)
    shutil.copy2(w.data_dir / "wardcrf.db", root / "old.db")
    add_notes(w, 5, "newer")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (w.data_dir / f"wardcrf.db{suffix}").unlink()
    shutil.copy2(root / "old.db", w.data_dir / "wardcrf.db")
    try:
        return _verify(w)
    except Exception as exc:
        return f"sign-in refused: {str(exc)[:140]}"


@attack("8d the hub refuses a bundle: is the refusal recorded?")
def _a8d(root: Path) -> str:
    w, h = pair(root)
    append_raw(w, "dsmg.decision", {"site": "WUH01", "decision": "stop", "detail": "x"}, subject="site:WUH01")
    res = hub_import(h, export(w, root / "u")[0])
    n = scalar(h, "SELECT count(*) FROM events WHERE type = 'sync.bundle_refused'")
    return f"{res[:70]}; refusal events at the hub: {n}"


@attack("9a full name with ESC/OSC/bidi, then `user list`")
def _a9a(root: Path) -> str:
    w = make_ward(root)
    s = open_(w)
    try:
        users.add_user(s, "eve", ESC, "clinician", PASSWORD)
    except Exception as exc:
        return f"refused: {str(exc)[:150]}"
    finally:
        s.close()
    _code, out, err = cli("user", "list", data_dir=w.data_dir)
    return f"stored; `user list` prints raw ESC: {dangerous(out + err)}"


def _protocol_source() -> str:
    from importlib import resources

    return resources.files("wardcrf.protocols").joinpath("mexcovid.toml").read_text("utf-8")


def _parse(src: str) -> str:
    from wardcrf import protocol

    try:
        protocol.parse(src, "t.toml")
        return "LOADS"
    except RecursionError:
        return "RecursionError"
    except Exception as exc:
        msg = str(exc)
        return f"refused ({type(exc).__name__}, {len(msg):,} chars, {msg.count(chr(10)) + 1} line(s)): {msg[:90]}"


@attack("9b protocol with hard = [nan, inf]")
def _a9b(root: Path) -> str:
    import re

    src = _protocol_source()
    m = re.search(r"hard = \[[^\]]*\]", src)
    return _parse(src.replace(m.group(0), "hard = [nan, inf]", 1)) if m else "no hard range in the protocol"


@attack("9c protocol with arrays nested 5,000 deep")
def _a9c(root: Path) -> str:
    return _parse(_protocol_source() + "\nx = " + "[" * 5000 + "]" * 5000 + "\n")


@attack("9d protocol with a 5 MB label")
def _a9d(root: Path) -> str:
    import re

    src = _protocol_source()
    m = re.search(r'label = \{ en = "[^"]*"', src)
    return _parse(src.replace(m.group(0), 'label = { en = "' + "L" * 5_000_000 + '"', 1)) if m else "?"


@attack("9e a 2,000-character participant id")
def _a9e(root: Path) -> str:
    w = make_ward(root)
    code, _out, err = cli("participant", "show", "W" * 2000, data_dir=w.data_dir)
    return f"exit {code}; the error is {len(err):,} characters"


@attack("10a a malformed logger file")
def _a10a(root: Path) -> str:
    w = make_ward(root)
    cli("coldchain", "add-unit", "FRZ-1", "--name", "freezer", "--location", "ward", data_dir=w.data_dir,
        user="pharmacist")  # fmt: skip
    bad = root / "bad.csv"
    bad.write_bytes(b"timestamp,temp\n2020-03-15T08:00:00,-20\n2020-03-15T08:05:00,oops\n")
    code, _out, err = cli("coldchain", "import-logger", str(bad), "--unit", "FRZ-1", data_dir=w.data_dir,
                         user="pharmacist")  # fmt: skip
    return f"exit {code}: {err.strip()[:120]}"


@attack("10b `hub import` of a junk file: where does the refusal line go")
def _a10b(root: Path) -> str:
    h = make_hub(root)
    junk = root / "junk-000001.tar.age"
    junk.write_bytes(b"not a bundle")
    (root / "junk-000001.tar.age.minisig").write_bytes(b"not a signature")
    code, out, err = cli("hub", "import", str(junk), "--data-dir", str(h.data_dir), data_dir=h.data_dir)
    where = "stdout" if "refused" in out else "stderr" if "refused" in err else "neither"
    return f"exit {code}; refusal line on {where}"


@attack("10c a long refusal, piped at COLUMNS=80")
def _a10c(root: Path) -> str:
    w = make_ward(root)
    code, _out, err = cli("user", "add", "n" * 150, "--role", "clinician", data_dir=w.data_dir)
    return f"exit {code}; stderr is {err.count(chr(10))} line(s)"


@attack("N1 a ward bundle carrying raw ESC/bidi text in a note (hub import)")
def _n1(root: Path) -> str:
    w, h = pair(root)
    append_raw(w, "note.added", {"text": "Fever\x1b[2J\u202eevil"}, subject="site:WUH01")
    return hub_import(h, export(w, root / "u")[0])[:150]


@attack("N3 `coldchain custody` of a kit that does not exist")
def _n3(root: Path) -> str:
    w = make_ward(root)
    code, out, err = cli("coldchain", "custody", "NOPE-1", data_dir=w.data_dir)
    return f"exit {code}; stdout {out.strip()[:60]!r}; stderr {err.strip()[:80]!r}"


@attack("N4 a malformed device card (`sync set-hub`)")
def _n4(root: Path) -> str:
    w = make_ward(root)
    card = root / "bad.card"
    card.write_text("hello\n")
    code, _out, err = cli("sync", "set-hub", str(card), data_dir=w.data_dir)
    return f"exit {code}: {err.strip()[:100]}"


if __name__ == "__main__":
    import wardcrf

    print(json.dumps({"wardcrf": str(Path(wardcrf.__file__).parent)}), file=sys.stderr)
