"""SIGKILL a process appending events at random moments; nothing acknowledged is ever lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

from conftest import PASSWORD

from wardcrf import audit
from wardcrf.site import Site

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRITER = r"""
import sys
sys.path.insert(0, sys.argv[4])
import scratch_events  # the tests' scratch event types (wardcrf.authority)
from wardcrf import features
from wardcrf.site import Site
features.install()
s = Site.open(sys.argv[1]).unlock("clinician", sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    i += 1
    if i % 7 == 0:
        # Sometimes several events in one transaction: all or none must survive.
        with s.store.transaction():
            ids = [s.append(type="test.batch", body={"r": sys.argv[3], "i": i, "k": k}).event.seq for k in range(5)]
        print(" ".join(map(str, ids)), flush=True)
    else:
        e = s.append(type="test.note", body={"i": i, "pad": "x" * (i % 300)}).event
        print(e.seq, flush=True)
"""


def test_sigkill_during_appends_loses_nothing_acknowledged(site):
    rng = random.Random(20200316)
    acknowledged: set[int] = set()
    for _round in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(site.data_dir), PASSWORD, str(_round), TESTS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        # Kill after a random number of acknowledged commits (a condition, not a timer: a
        # loaded machine writes slower, never fewer), while the writer is in its next append.
        for _ in range(rng.randint(5, 40)):
            line = proc.stdout.readline()
            assert line.endswith("\n"), proc.stderr.read() if proc.stderr else "the writer stopped"
            acknowledged.update(int(x) for x in line.split())
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        for line in out.splitlines():
            # The last line may be torn by the kill; only whole lines were acknowledged.
            if line.strip() and line.endswith(tuple("0123456789")) and line in out.splitlines()[:-1]:
                acknowledged.update(int(x) for x in line.split())
        s = Site.open(site.data_dir).unlock("auditor", PASSWORD)
        try:
            assert s.store.integrity_check() == "ok"
            report = audit.verify(s)
            assert report.ok, report.problems
            present = {
                r[0] for r in s.store.execute("SELECT seq FROM events WHERE device = ?", (s.ctx.device,))
            }
            missing = acknowledged - present
            assert not missing, f"round {_round}: acknowledged events lost: {sorted(missing)[:5]}"
            # Batches are atomic: a batch is either complete or absent.
            batches = s.store.rows(
                "SELECT json_extract(line, '$.body.r') AS r, json_extract(line, '$.body.i') AS i,"
                " count(*) AS n FROM events WHERE type = 'test.batch' GROUP BY 1, 2"
            )
            assert all(b["n"] == 5 for b in batches), batches
        finally:
            s.close()
    assert len(acknowledged) > 50
