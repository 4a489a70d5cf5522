"""Event types that exist only in tests: scratch notes that fill a chain.

Every event type must be in the authority table (`wardcrf.authority`); these
are declared for the test process and for the `wardcrf` subprocesses tests
start (`synckit.HubServer` imports this module first).
"""

from __future__ import annotations

from wardcrf import authority, eventbodies

SCRATCH = (
    "note.added",
    "note.test",
    "test.note",
    "test.batch",
    "qa.note",
    "qa_x.note",
    "qaYx.note",
    "QA_X.note",
)

for _name in SCRATCH:
    authority.declare(
        authority.EventType(
            _name, authority.Origin.SITE, any_role=True, keyless=True, what="a test's scratch event"
        ),
        eventbodies.Empty,
    )
