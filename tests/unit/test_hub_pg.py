"""The hub's ledger and transparency log on both engines: SQLCipher (default) and PostgreSQL (issue 19).

Every test runs on a real engine: a SQLCipher file, and a PostgreSQL server
started for this test process (`pgserver`; skipped only where no PostgreSQL
binaries are installed). The same code (`sync/hublog.py` through the
`SqlStore` interface) must log, sign, prove and refuse alike on both, and
two importing processes pushing at once must apply each bundle exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import ledgerkit
import pytest
from ledgerkit import Where
from wardcrf.sync import hublog
from wardcrf.sync.pgstore import PgStore, describe, to_pg

from wardcrf import eventlog
from wardcrf.devicekeys import DeviceSigner
from wardcrf.errors import Refused, StoreError
from wardcrf.store import Store
from wardcrf.tlog import checkpoint, merkle

ENGINES = ("sqlcipher", "postgresql")
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def signer() -> DeviceSigner:
    return ledgerkit.hub_signer()


@pytest.fixture(params=ENGINES)
def where(request: pytest.FixtureRequest, tmp_path: Path, signer: DeviceSigner) -> Where:
    w = ledgerkit.where_for(request.param, tmp_path, request)
    ledgerkit.create(w, signer).close()
    return w


def _script(store, signer: DeviceSigner) -> list[str]:
    """One history: three devices' bundles, a replay, a fork; checkpoints after each round."""
    outcomes, notes = [], []
    for rnd in range(1, 4):
        for dev in ("lap1", "lap2", "lap3"):
            outcomes.append(ledgerkit.apply_step(store, dev, rnd, f"{dev}-{rnd}".ljust(64, "0")))
        notes.append(hublog.sign_checkpoint(store, signer))
    outcomes.append(ledgerkit.apply_step(store, "lap1", 2, "lap1-2".ljust(64, "0")))  # a replay
    outcomes.append(ledgerkit.apply_step(store, "lap2", 3, "other".ljust(64, "0")))  # a fork
    notes.append(hublog.sign_checkpoint(store, signer))
    return outcomes + [str(n) for n in notes]


def test_both_engines_log_sign_and_prove_the_same_history_byte_for_byte(request, tmp_path, signer):
    """Same steps on SQLCipher and PostgreSQL: same leaves, same tree, same signed checkpoints and receipts."""
    seen = {}
    for engine in ENGINES:
        w = ledgerkit.where_for(engine, tmp_path, request)
        store = ledgerkit.create(w, signer)
        try:
            trace = _script(store, signer)
            leaves = store.rows(
                "SELECT idx, leaf, device, bundle_seq, manifest_sha, status FROM tlog_leaves ORDER BY idx"
            )
            nodes = [
                (r[0], r[1], bytes(r[2]))
                for r in store.execute("SELECT level, idx, hash FROM tlog_nodes ORDER BY level, idx")
            ]
            receipt = hublog.receipt_part(store, "lap2")
            chain = hublog.export_chain(store)
            verifier = hublog.own_verifier(store)
        finally:
            store.close()
        seen[engine] = (trace, leaves, nodes, receipt, chain, verifier.vkey)
    assert seen["sqlcipher"] == seen["postgresql"]
    trace, leaves, _nodes, receipt, chain, vkey = seen["postgresql"]
    assert trace[:9] == ["applied"] * 9 and trace[9:11] == ["already", "fork"]
    assert [leaf["status"] for leaf in leaves] == ["applied"] * 9 + ["held"]
    # What a ward and an auditor check, offline, against the hub's key.
    v = hublog.verifier(hublog.origin_of(ledgerkit.HUB_SITE, ledgerkit.HUB_DEVICE), signer.sign_public)
    assert v.vkey == vkey
    got = hublog.verify_chain(hublog.dumps_chain(chain), v)
    assert [cp.size for cp in got] == [3, 6, 9, 10]
    assert receipt is not None and [b["bundle_seq"] for b in receipt["bundles"]] == [1, 2, 3, 3]
    for b in receipt["bundles"]:
        leaf = merkle.leaf_hash(hublog.leaf_text("lap2", b["bundle_seq"], b["manifest"], b["status"]))
        assert checkpoint.verify_proof(b["proof"], leaf, v).checkpoint.size == 10


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE tlog_leaves SET status = 'held'",
        "DELETE FROM tlog_leaves",
        "DELETE FROM tlog_nodes",
        "UPDATE tlog_nodes SET hash = hash",
        "UPDATE tlog_checkpoints SET note = ''",
        "DELETE FROM tlog_checkpoints",
    ],
)
def test_the_log_tables_refuse_update_and_delete_on_both_engines(where, signer, sql):
    store = where.open()
    try:
        _script(store, signer)
        before = (
            store.scalar("SELECT count(*) FROM tlog_leaves"),
            store.scalar("SELECT count(*) FROM tlog_nodes"),
        )
        with pytest.raises(Exception, match="append-only"), store.transaction():
            store.execute(sql)
        after = (
            store.scalar("SELECT count(*) FROM tlog_leaves"),
            store.scalar("SELECT count(*) FROM tlog_nodes"),
        )
        assert before == after and before[0] == 10
        assert store.scalar("SELECT status FROM tlog_leaves WHERE idx = 0") == "applied"
    finally:
        store.close()


def test_truncate_of_the_log_is_refused_on_postgresql(pg_server, tmp_path, signer):
    """TRUNCATE skips row triggers: a statement trigger refuses it (SQLite has no TRUNCATE)."""
    w = Where("postgresql", dsn=pg_server.new_database())
    store = ledgerkit.create(w, signer)
    try:
        _script(store, signer)
        for table in ("tlog_leaves", "tlog_nodes", "tlog_checkpoints"):
            with pytest.raises(Exception, match="append-only"):
                store.execute(f"TRUNCATE {table}")
        assert store.scalar("SELECT count(*) FROM tlog_leaves") == 10
    finally:
        store.close()


def _spawn(where: Where, signer: DeviceSigner, bundles, pause_after=None, events=False) -> subprocess.Popen:
    spec = {
        "where": where.__dict__,
        "signer": {k: getattr(signer, k) for k in ("device", "key_id", "sign_public", "minisign_secret")},
        "bundles": bundles,
        "pause_after": pause_after,
        "events": events,
    }
    path = os.pathsep.join((str(HERE), str(HERE.parent)))
    env = {**os.environ, "WARDCRF_BUSY_TIMEOUT_MS": "300000", "PYTHONPATH": path}
    return subprocess.Popen(
        [sys.executable, str(HERE / "ledgerkit.py"), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _check_tree(store) -> int:
    """The stored tree is the tree of its leaves, and every checkpoint is of that tree's prefix."""
    leaves = [bytes.fromhex(r[0]) for r in store.execute("SELECT leaf FROM tlog_leaves ORDER BY idx")]
    assert [r[0] for r in store.execute("SELECT idx FROM tlog_leaves ORDER BY idx")] == list(
        range(len(leaves))
    )
    nodes = hublog.StoreNodes(store)
    tree = merkle.Tree()
    for leaf in leaves:
        tree.append_hash(leaf)
    assert merkle.root(nodes) == merkle.root(tree)
    v = hublog.own_verifier(store)
    hublog.verify_chain(hublog.dumps_chain(hublog.export_chain(store)), v)
    return len(leaves)


@pytest.mark.slow
def test_twenty_concurrent_importers_apply_each_bundle_exactly_once(where, signer):
    """20 processes push at once; each bundle is pushed by several of them, some at the same moment.

    Every bundle ends applied exactly once (one process says "applied", the
    others "already"), the log holds exactly one leaf per bundle, its tree
    and every checkpoint signed by any process verify.
    """
    devices = [f"lap{i}" for i in range(5)]
    bundles = [[d, seq, f"{d}-{seq}".ljust(64, "0")] for seq in range(1, 5) for d in devices]
    procs = []
    for n in range(20):
        mine = [b for i, b in enumerate(bundles) if (i + n) % 4 != 0]  # each bundle pushed by 15 of 20
        procs.append(_spawn(where, signer, mine if n % 2 else mine[::-1]))
    outcomes: Counter[tuple[str, int, str]] = Counter()
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        for line in out.splitlines():
            d, seq, what = json.loads(line)
            outcomes[(d, seq, what)] += 1
    for d, seq, _sha in bundles:
        assert outcomes[(d, seq, "applied")] == 1, (d, seq)
        assert outcomes[(d, seq, "already")] == 14, (d, seq)
    store = where.open()
    try:
        assert store.scalar("SELECT count(*) FROM sync_applied") == len(bundles)
        assert _check_tree(store) == len(bundles)
        assert store.scalar("SELECT max(size) FROM tlog_checkpoints") == len(bundles)
    finally:
        store.close()


def test_an_importer_killed_mid_bundle_leaves_nothing_and_the_bundle_applies_once_after(where, signer):
    """SIGKILL inside a bundle's transaction (after its ledger row and log leaf were written, before commit)."""
    first = [["lap1", 1, "lap1-1".ljust(64, "0")]]
    victim = ["lap1", 2, "lap1-2".ljust(64, "0")]
    done = _spawn(where, signer, first)
    assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""
    p = _spawn(where, signer, [victim], pause_after=victim[:2])
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "paused", p.stderr.read() if p.stderr else ""
    # Another importer of the same device waits for the victim's lock meanwhile.
    waiting = _spawn(where, signer, [victim])
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=60)
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err[-2000:]
    assert json.loads(out.splitlines()[0]) == [*victim[:2], "applied"]
    again = _spawn(where, signer, [victim])
    out, _ = again.communicate(timeout=300)
    assert json.loads(out.splitlines()[0]) == [*victim[:2], "already"]
    store = where.open()
    try:
        assert store.scalar("SELECT count(*) FROM sync_applied WHERE device = 'lap1'") == 2
        assert _check_tree(store) == 2
    finally:
        store.close()


def test_lock_outside_a_transaction_is_a_bug_on_both_engines(where):
    store = where.open()
    try:
        with pytest.raises(RuntimeError, match="outside a transaction"):
            store.lock("device:lap1")
    finally:
        store.close()


def _unique_keys_lite(store: Store, table: str) -> set[tuple[str, ...]]:
    """The column sets a SQLite table keeps unique: its primary key (a rowid alias included) and every
    unique constraint or index."""
    keys = {
        tuple(
            r[1]
            for r in sorted(store.execute(f"PRAGMA table_info({table})").fetchall(), key=lambda r: r[5])
            if r[5]
        )
    } - {()}
    for index in store.execute(f"PRAGMA index_list({table})").fetchall():
        if index[2]:  # unique
            keys.add(tuple(r[2] for r in store.execute(f"PRAGMA index_info({index[1]})").fetchall()))
    return keys


def _unique_keys_pg(store: PgStore, table: str) -> set[tuple[str, ...]]:
    """The column sets a PostgreSQL table keeps unique (primary key, unique constraints and indexes)."""
    rows = store.rows(
        "SELECT x.indexrelid::regclass::text AS name, a.attname AS col, k.n AS n"
        " FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid"
        " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
        " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
        " WHERE t.relname = ? AND x.indisunique ORDER BY 1, 3",
        (table,),
    )
    keys: dict[str, list[str]] = {}
    for r in rows:
        keys.setdefault(r["name"], []).append(r["col"])
    return {tuple(cols) for cols in keys.values()}


ROWID_TWINS = ("records", "protocols", "protocol_applications", "administration_kits", "rand_lists")
"""Tables the common-dialect code orders by SQLite's rowid: their PostgreSQL twin has a `rowid` identity column."""


COLD_CHAIN = (
    "cc_evidence",
    "cc_readings",
    "cc_reading_conflicts",
    "cc_units",
    "cc_lots",
    "cc_kits",
    "cc_transfers",
    "cc_custody",
    "cc_logger_files",
    "cc_manual_readings",
    "cc_excursions",
    "cc_dispositions",
    "cc_thaws",
    "cc_preparations",
)


def test_the_postgresql_schema_keeps_in_step_with_sqlcipher(pg_server, tmp_path):
    """Every ledger table has the same columns, in the same order, with matching types and NOT NULLs,
    and keeps the same column sets unique (a duplicate one engine refuses, the other must refuse too)."""
    pg = PgStore(pg_server.new_database())
    lite = Store(tmp_path / "s.db", os.urandom(32))
    try:
        pg.migrate()
        lite.migrate()
        types = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}
        for table in (
            "events",
            "chain_heads",
            "sync_devices",
            "sync_applied",
            "sync_held",
            "tlog_leaves",
            "tlog_nodes",
            "tlog_checkpoints",
            "tlog_sent",
            "site",
            # The form records' projections (0005-form-records).
            *ROWID_TWINS,
            "users",
            "amendments",
            "signatures",
            "protocol_encodings",
            "participants",
            "doses",
            "vitals",
            "adverse_events",
            "photo_bindings",
            "photo_first_refs",
            "ward_queue",
            "counters",
            "rand_allocations",
            # Photos (0007-photos): their metadata and where each sits in a kept bundle.
            "photos",
            "photo_archive",
            # The cold chain (0008-cold-chain): its forms' projections, logger files and readings.
            *COLD_CHAIN,
            # What a ward sends beside its records (0009-site-projections).
            "device_scanner",
            "sync_queries",
            "sync_decisions",
            "codings",
            "coding_dictionaries",
            "sdv_marks",
            # Randomization (0011-randomization; `rand_lists` is a rowid twin above).
            "rand_entries",
            "rand_flags",
            "rand_exhausted",
            "rand_unblindings",
            "rand_unblinding_keys",
            # Who can read a site's bundles (0013-sync-recipients).
            "sync_recipients",
        ):
            want = [
                (r[1], types[r[2]], bool(r[3]) or bool(r[5]))
                for r in lite.execute(f"PRAGMA table_info({table})").fetchall()
            ]
            got = [
                (r["column_name"], r["data_type"], r["is_nullable"] == "NO")
                for r in pg.rows(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                    " WHERE table_name = ? ORDER BY ordinal_position",
                    (table,),
                )
            ]
            if table in ROWID_TWINS:  # SQLite's implicit rowid, made a column: last, numbered by the engine
                assert got[-1] == ("rowid", "bigint", True), table
                assert (
                    pg.scalar(
                        "SELECT is_identity FROM information_schema.columns WHERE table_name = ? AND column_name = 'rowid'",
                        (table,),
                    )
                    == "YES"
                ), table
                got = got[:-1]
            assert got == want, table
            assert _unique_keys_pg(pg, table) == _unique_keys_lite(lite, table), table
        # The PostgreSQL hub holds the public halves of its keys only.
        lite_keys = [r[1] for r in lite.execute("PRAGMA table_info(device_keys)").fetchall()]
        pg_keys = [
            r["column_name"]
            for r in pg.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'device_keys'"
            )
        ]
        assert set(pg_keys) <= set(lite_keys) and "sign_secret" not in pg_keys
        assert pg.migrate() == []  # applied once
    finally:
        pg.close()
        lite.close()


def test_placeholders_translate_outside_quotes_only():
    assert (
        to_pg("SELECT ? , '?' , \"a?\" , 5 % 2 WHERE x = ?")
        == "SELECT %s , '?' , \"a?\" , 5 %% 2 WHERE x = %s"
    )
    assert to_pg("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_a_bad_dsn_is_one_line_without_the_password(pg_server):
    with pytest.raises(StoreError) as e:
        PgStore(f"host={pg_server.root} dbname=nosuchdb user=postgres password=s3cret", connect_timeout=5)
    msg = str(e.value)
    assert "\n" not in msg and "s3cret" not in msg and "nosuchdb" in msg
    assert (
        describe("postgresql://u:s3cret@db.example:5433/hub") == "postgresql database hub on db.example:5433"
    )


def test_the_import_role_appends_but_cannot_update_or_delete_the_log(pg_server, signer):
    """A login role granted wardcrf_import applies bundles; UPDATE, DELETE and TRUNCATE are denied it."""
    import psycopg

    dsn = pg_server.new_database()
    ledgerkit.create(Where("postgresql", dsn=dsn), signer).close()
    login = "worker_" + os.urandom(4).hex()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        admin.execute(f"GRANT wardcrf_import TO {login}")
    store = PgStore(dsn.replace("user=postgres", f"user={login}"))
    try:
        assert ledgerkit.apply_step(store, "lap1", 1, "a" * 64) == "applied"
        assert ledgerkit.apply_step(store, "lap1", 1, "b" * 64) == "fork"
        assert hublog.sign_checkpoint(store, signer) is not None
        for sql in (
            "UPDATE tlog_leaves SET status = 'held'",
            "DELETE FROM tlog_nodes",
            "TRUNCATE tlog_checkpoints",
            "DELETE FROM sync_applied",
            "DELETE FROM sync_held",
            "UPDATE site SET device = 'x'",
            "DROP TRIGGER tlog_leaves_no_update ON tlog_leaves",
        ):
            with pytest.raises(StoreError, match=r"permission denied|must be owner"):
                store.execute(sql)
        assert store.scalar("SELECT count(*) FROM tlog_leaves") == 2
    finally:
        store.close()


def test_a_hubs_ledger_copies_to_postgresql_with_the_same_history_and_grows_with_it(
    pg_server, tmp_path, monkeypatch
):
    """`hub copy-to-postgres`: the copy's checkpoint chain is the hub's; run again, only what is new."""
    from synckit import connect, make_hub, make_ward, open_
    from test_sync_cli import run
    from test_sync_tlog import _round

    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    for tag in ("a", "b"):
        _round(tmp_path, w, h, tag=tag)
    dsn = pg_server.new_database()
    monkeypatch.setenv("WARDCRF_HUB_DATABASE", dsn)
    code, out, err = run("hub", "copy-to-postgres", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    assert "a log of 2 bundle outcomes (2 new)" in out and "2 bundles applied" in out, out

    def chains() -> tuple[dict, dict]:
        hs = open_(h)
        pg = PgStore(dsn)
        try:
            return hublog.export_chain(hs.store), hublog.export_chain(pg)
        finally:
            hs.close()
            pg.close()

    at_hub, at_pg = chains()
    assert at_hub == at_pg and len(at_pg["checkpoints"]) == 2
    _round(tmp_path, w, h, tag="c")
    code, out, err = run("hub", "copy-to-postgres", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0 and "a log of 3 bundle outcomes (1 new)" in out, (out, err)
    at_hub, at_pg = chains()
    assert at_hub == at_pg
    hs = open_(h)
    try:
        v = hublog.own_verifier(hs.store)
    finally:
        hs.close()
    assert [cp.size for cp in hublog.verify_chain(hublog.dumps_chain(at_pg), v)] == [1, 2, 3]
    # A copy whose history is not this hub's (rewritten on the server by its owner) is refused whole.
    pg = PgStore(dsn)
    try:
        pg.execute("ALTER TABLE tlog_nodes DISABLE TRIGGER tlog_nodes_no_update")
        pg.execute("UPDATE tlog_nodes SET hash = ? WHERE level = 0 AND idx = 0", (b"\0" * 32,))
    finally:
        pg.close()
    _round(tmp_path, w, h, tag="d")
    code, out, err = run("hub", "copy-to-postgres", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 1 and err.count("\n") == 1 and "not this hub's" in err, (code, out, err)
    pg = PgStore(dsn)
    try:
        assert pg.scalar("SELECT count(*) FROM tlog_leaves") == 3  # nothing of the fourth copied
    finally:
        pg.close()
    # A server that is not there: one line, exit 1 or 2, no traceback, no password.
    monkeypatch.setenv("WARDCRF_HUB_DATABASE", f"host={tmp_path} dbname=x user=postgres password=s3cret")
    code, out, err = run("hub", "copy-to-postgres", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code in (1, 2) and err.count("\n") == 1 and "s3cret" not in err and "Traceback" not in err, err


# -- the event log on both engines ------------------------------------------------------------


def _log(store) -> list[tuple]:
    return [
        tuple(r)
        for r in store.execute(
            'SELECT id, device, seq, prev, hash, hlc, ts, "user", type, subject, amends, line'
            " FROM events ORDER BY device, seq"
        )
    ]


def test_the_event_log_appends_checks_and_verifies_alike_on_both_engines(request, tmp_path, signer):
    """The same events through `eventlog.ingest_many`: the same rows and heads, every chain verifies."""
    seen = {}
    for engine in ENGINES:
        store = ledgerkit.create(ledgerkit.where_for(engine, tmp_path, request), signer)
        try:
            for seq in (1, 2, 3):
                for dev in ("lap1", "lap2"):
                    assert ledgerkit.ingest_step(store, dev, seq) == "applied"
            assert ledgerkit.ingest_step(store, "lap1", 2) == "already"
            # An event that does not continue the chain as held here is refused, nothing written.
            stray = ledgerkit.note_events("lap1", 17, 1, "f" * 64)
            with pytest.raises(Refused, match="does not continue device lap1's chain"), store.transaction():
                eventlog.ingest_many(store, stray)
            heads = sorted(tuple(r) for r in store.execute("SELECT device, seq, hash, hlc FROM chain_heads"))
            seen[engine] = (_log(store), heads, eventlog.verify_chains(store))
        finally:
            store.close()
    assert seen["sqlcipher"] == seen["postgresql"]
    log, heads, (checked, problems) = seen["postgresql"]
    assert checked == len(log) == 30 and problems == []
    assert [h[:2] for h in heads] == [("lap1", 15), ("lap2", 15)]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET line = line",
        "UPDATE events SET type = 'note.test' WHERE seq = 2",
        "DELETE FROM events WHERE seq = 5",
        "DELETE FROM events",
    ],
)
def test_the_event_log_refuses_update_and_delete_on_both_engines(where, sql):
    store = where.open()
    try:
        ledgerkit.ingest_step(store, "lap1", 1)
        with pytest.raises(Exception, match="append-only"), store.transaction():
            store.execute(sql)
        assert store.scalar("SELECT count(*) FROM events") == 5
        assert eventlog.verify_chains(store) == (5, [])
    finally:
        store.close()


def test_truncate_of_the_event_log_is_refused_on_postgresql(pg_server, signer):
    store = ledgerkit.create(Where("postgresql", dsn=pg_server.new_database()), signer)
    try:
        ledgerkit.ingest_step(store, "lap1", 1)
        with pytest.raises(Exception, match="append-only"):
            store.execute("TRUNCATE events")
        assert store.scalar("SELECT count(*) FROM events") == 5
    finally:
        store.close()


def test_the_import_role_appends_events_but_cannot_alter_them(pg_server, signer):
    """A login role granted wardcrf_import appends events and moves chain heads; never UPDATE/DELETE/TRUNCATE."""
    import psycopg

    dsn = pg_server.new_database()
    ledgerkit.create(Where("postgresql", dsn=dsn), signer).close()
    login = "worker_" + os.urandom(4).hex()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        admin.execute(f"GRANT wardcrf_import TO {login}")
    store = PgStore(dsn.replace("user=postgres", f"user={login}"))
    try:
        assert [ledgerkit.ingest_step(store, "lap1", n) for n in (1, 2)] == ["applied", "applied"]
        for sql in (
            "UPDATE events SET line = line",
            "DELETE FROM events",
            "TRUNCATE events",
            "DELETE FROM chain_heads",
            "ALTER TABLE events DISABLE TRIGGER events_no_update",
            "DROP TRIGGER events_no_update ON events",
        ):
            with pytest.raises(StoreError, match=r"permission denied|must be owner"):
                store.execute(sql)
        assert eventlog.verify_chains(store) == (10, [])
    finally:
        store.close()


@pytest.mark.parametrize(
    ("tamper", "what"),
    [
        ("UPDATE events SET line = replace(line, 'n.nurse', 'x.nurse') WHERE seq = 3", "edited"),
        ("UPDATE events SET \"user\" = 'x.nurse' WHERE seq = 4", "column user differs"),
        ("DELETE FROM events WHERE seq = 7", "missing event"),
        ("DELETE FROM events WHERE seq = 10", "events deleted at the end"),
    ],
)
def test_a_row_a_superuser_altered_around_the_triggers_is_found_on_postgresql(
    pg_server, signer, tamper, what
):
    """The chain check re-hashes every line from the PostgreSQL rows: a change made with the triggers off shows."""
    store = ledgerkit.create(Where("postgresql", dsn=pg_server.new_database()), signer)
    try:
        for n in (1, 2):
            ledgerkit.ingest_step(store, "lap1", n)
            ledgerkit.ingest_step(store, "lap2", n)
        assert eventlog.verify_chains(store) == (20, [])
        store.execute("ALTER TABLE events DISABLE TRIGGER events_no_update")
        store.execute(tamper + " AND device = 'lap1'")
        store.execute("ALTER TABLE events ENABLE TRIGGER events_no_update")
        _checked, problems = eventlog.verify_chains(store)
        assert [p.device for p in problems] == ["lap1"] and what in problems[0].what, problems
    finally:
        store.close()


@pytest.mark.slow
def test_twenty_concurrent_importers_append_each_bundles_events_exactly_once(where, signer):
    """20 processes append the same devices' bundles of events at once: each chain is written once, unbroken."""
    devices = [f"lap{i}" for i in range(4)]
    bundles = [[d, seq, ""] for seq in range(1, 4) for d in devices]
    # Each process pushes every bundle, a device's in order, the devices in a rotated order.
    procs = [
        _spawn(where, signer, [[d, seq, ""] for seq in range(1, 4) for d in devices[n % 4 :] + devices[: n % 4]],
               events=True)
        for n in range(20)
    ]  # fmt: skip
    outcomes: Counter[tuple[str, int, str]] = Counter()
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        for line in out.splitlines():
            d, seq, what = json.loads(line)
            outcomes[(d, seq, what)] += 1
    store = where.open()
    try:
        assert eventlog.verify_chains(store) == (len(bundles) * 5, [])
        assert store.scalar("SELECT count(*) FROM sync_applied") == len(bundles)
        assert _check_tree(store) == len(bundles)
    finally:
        store.close()
    for d, seq, _ in bundles:
        assert outcomes[(d, seq, "applied")] == 1 and outcomes[(d, seq, "already")] == 19, (d, seq)
