"""The participant's path in log order: screened and eligible before enrollment, enrolled before a dose.

The services refuse anything else (the engine's enrollment and administration
rules, `engine_rules`), so on a ward these rules only find records that
reached the log another way: a rewritten and re-signed bundle, an edited
import, a bug. Consent-first is its sibling in `participants`
(`consent_problems`); both run in `audit verify` over the whole log and at
sync import over the participants a bundle touches, where a bundle that
breaks them is held for the coordinator with the reason (like a fork),
never applied silently.

Eligibility is judged as the screening stands now, unless the screening was
corrected after the enrollment: a correction that makes an enrolled
participant ineligible is the "no longer eligible" deviation the dose rules
handle, not a record out of order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .. import audit
from ..eventlog import Event
from ..sqlstore import common_dialect
from ..store import Store
from .participants import hold_on_problems

if TYPE_CHECKING:
    from ..features import Registry

ENROLLMENT, SCREENING = "enrollment", "screening"
AFTER_ENROLLMENT = ("dose",)
"""Forms the domain records only for an enrolled participant."""


def order_problems(store: Store, subjects: Iterable[str] | None = None) -> tuple[int, list[tuple[str, str]]]:
    """(records checked, [(event id, problem)]) for enrollments and doses out of order.

    `subjects`: participant subjects (`participant:ID`) to check, every one if None.
    """
    forms = (SCREENING, ENROLLMENT, *AFTER_ENROLLMENT)
    where = f"r.form IN ({','.join('?' * len(forms))})"
    params: list[str] = list(forms)
    wanted: list[str] | None = None
    if subjects is not None:
        wanted = sorted(set(subjects))
        if not wanted:
            return 0, []
        where += f" AND r.subject IN ({','.join('?' * len(wanted))})"
        params += wanted
    else:
        where += " AND r.subject LIKE 'participant:%'"
    rows = store.execute(
        "SELECT r.subject, r.form, r.event_id, e.pos, last.pos FROM records r"
        " JOIN events e ON e.id = r.event_id JOIN events last ON last.id = r.last_event"
        f" WHERE {where} ORDER BY e.pos",
        tuple(params),
    ).fetchall()
    eligible = dict(store.execute(*eligibility_query(wanted)).fetchall())
    screened: dict[str, int] = {}  # subject -> pos of the screening's last version
    enrolled: set[str] = set()
    problems: list[tuple[str, str]] = []
    for subject, form, event_id, pos, last_pos in rows:
        pid = subject.removeprefix("participant:")
        if form == SCREENING:
            screened.setdefault(subject, last_pos)
        elif form == ENROLLMENT:
            enrolled.add(subject)
            if subject not in screened:
                problems.append((event_id, f"{pid}: enrollment record {event_id} has no screening before it"))
            elif not eligible.get(subject) and screened[subject] < pos:
                problems.append(
                    (
                        event_id,
                        f"{pid}: enrollment record {event_id} follows a screening that did not find them eligible",
                    )
                )
        elif subject not in enrolled:
            problems.append((event_id, f"{pid}: {form} record {event_id} has no enrollment before it"))
    return len(rows), problems


def eligibility_query(subjects: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """(SQL, parameters) reading `participant:ID` -> eligible for the screened among `subjects` (all if None).

    At import the check runs per bundle on the participants the bundle touches: it
    looks those up by primary key, so its cost follows the bundle, not the hub (reading
    every screened participant per bundle grew with the hub's size; issue 19).
    """
    sql = "SELECT 'participant:' || id, eligible FROM participants WHERE screening_event IS NOT NULL"
    if subjects is None:
        return sql, ()
    ids = tuple(s.removeprefix("participant:") for s in subjects)
    return sql + f" AND id IN ({','.join('?' * len(ids))})", ids


def _enrolled_first(store: Store) -> audit.CheckResult:
    """Enrollment after an eligible screening; every dose after the enrollment."""
    checked, problems = order_problems(store)
    return audit.CheckResult("enrollment sequencing", checked, [p for _, p in problems])


@common_dialect
def hold_records_out_of_order(store: Store, events: Sequence[Event]) -> None:
    """After-ingest hook: a bundle enrolling before screening or dosing before enrollment is held."""
    hold_on_problems(store, events, order_problems)


def register(registry: Registry) -> None:
    """The enrollment-sequencing audit check and its hold at sync import."""
    registry.audit_check("enrollment sequencing", _enrolled_first)
    registry.after_ingest(
        hold_records_out_of_order,
        "record.submitted",
        "record.amended",
        holds="an enrollment or a dose out of sequence",
    )
