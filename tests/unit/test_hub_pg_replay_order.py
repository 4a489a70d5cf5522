"""`db rebuild --check`'s commit order at a PostgreSQL hub (`sync.pgcheck.COMMIT_ORDER`) in one pass.

An event no bundle's leaf names goes before the next one committed after it in the log: the smallest leaf
at or after its position. It was a window frame from the current row to the end, which PostgreSQL
recomputes row by row for `min` (no inverse): quadratic, minutes on a 27,000-event log
(bench/bench_pg_replay.py). It is now a running minimum from the end of the log; the two give the same
order, which this checks on a real server over a log with leaves missing here and there and at its end.
"""

from __future__ import annotations

import random

import psycopg

OLD = "min(leaf) OVER (ORDER BY pos ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)"
NEW = "min(leaf) OVER (ORDER BY pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


def test_the_running_minimum_from_the_end_orders_the_log_as_the_frame_to_the_end_did(pg_server):
    from wardcrf.sync import pgcheck

    assert NEW in pgcheck.COMMIT_ORDER.replace("t.leaf", "leaf").replace("e.pos", "pos")
    rng = random.Random(19)
    rows, leaf = [], 0
    for pos in range(1, 3001):
        if rng.random() < 0.3 or pos > 2950:  # no leaf: a row between bundles, and the log's tail
            rows.append((pos, None))
        else:
            leaf += rng.choice((0, 1, 1, 2))  # several events of one bundle share its leaf
            rows.append((pos, rng.choice((leaf, leaf, max(leaf - 3, 0)))))  # bundles committed out of order
    with psycopg.connect(pg_server.dsn(pg_server.new_database()), autocommit=True) as db:
        db.execute("CREATE TABLE log (pos bigint PRIMARY KEY, leaf bigint)")
        with db.cursor() as cur:
            cur.executemany("INSERT INTO log VALUES (%s, %s)", rows)
        orders = [
            [r[0] for r in db.execute(f"SELECT pos FROM log ORDER BY coalesce(leaf, {w}) NULLS LAST, pos")]
            for w in (OLD, NEW)
        ]
    assert orders[0] == orders[1] and sorted(orders[1]) == list(range(1, 3001))
    assert orders[1] != list(range(1, 3001))  # the commit order is not the log's here: the test can tell
