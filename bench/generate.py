"""A trial site of real records, generated fast enough to benchmark at a million events.

Every record goes through `records.submit` → `eventlog.append`: the real
canonical line, hash chain, body schema check and every projector (records,
participants, doses, vitals, photo bindings), so the database is what a ward
that typed the same values would hold, and `audit verify` and
`db rebuild --check` pass on it. What the fast path leaves out is the
clinical rule check of `workflow.submit` (a few reads per record, and the
three e-signatures of a consent, each a key derivation); the values written
are the ones those rules would have derived (age, eligibility, a dose's due
time, day and window), so the projections hold the same rows.

Speed comes from the transaction size: `batch` participants per commit (one
fsync per batch instead of per record). One participant is
`EVENTS_PER_PARTICIPANT` events: the photographed consent page (a small real
JPEG imported through `photos.importing.import_bytes`: blob, preview, event), the
consent referencing it and its three e-signatures (the doctor's, two witnesses'; `signature.applied`
events with the body `signatures.sign` writes, the password re-entry
left out: a key derivation each), screening, enrollment, demographics, labs
and CT score at baseline and after treatment, and five doses each with pre-
and post-dose vitals. 1,000,000 events are 37,037 participants.

The newest `in_treatment` participants were enrolled in the last days before
`today` and have had only some of their doses: the ward list has participants
due, overdue and owing post-dose vitals, as a real one does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

RECORDS_PER_PARTICIPANT = 23
EVENTS_PER_PARTICIPANT = RECORDS_PER_PARTICIPANT + 4  # the consent page's photo, the consent's signatures
WITNESSES = ("investigator", "clinician2")
ZONE = "+08:00"


def _u(v: float, unit: str) -> dict[str, Any]:
    return {"value": v, "unit": unit}


def consent_page(i: int) -> bytes:
    """A small real JPEG, different for every participant (its photographed consent page)."""
    import io

    from PIL import Image

    img = Image.new("RGB", (32, 24), ((i >> 16) & 255, (i >> 8) & 255, i & 255))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def participant_records(
    i: int, *, enrolled: date | None = None, doses: int = 5, photo: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(form, data) of participant number `i`, in the order a ward records them.

    `photo` is the consent page's reference (`sha256:...`); without one, a
    reference to nothing stored (for baselines that never read photos).
    """
    if enrolled is None:
        enrolled = date(2020, 3, 1) + timedelta(days=i % 28)
    day = enrolled.isoformat()
    yield (
        "consent",
        {
            "consenter": "participant",
            "form_version": "1.0",
            "time": f"{day}T10:00:00{ZONE}",
            "witness_1": WITNESSES[0],
            "witness_2": WITNESSES[1],
            "photos": [photo or "sha256:" + f"{i:064x}"],
        },
    )
    yield (
        "screening",
        {
            "date": day,
            "dob": "1963-01-01",
            "sex": "MF"[i % 2],
            "pcr_confirmed": True,
            "severity": "severe",
            "age": _u(57, "years"),
            "eligible": True,
            "failed_criteria": [],
        },
    )
    yield ("enrollment", {"date": day})
    yield (
        "demographics",
        {"symptom_onset": "2020-02-01", "admission": "2020-03-01", "onset_to_admission": _u(29, "days")},
    )
    for tp, lym in (("baseline", 1.2), ("post_treatment", 1.6)):
        yield (
            "labs",
            {
                "timepoint": tp,
                "date": day,
                "lym": _u(lym, "10^9/L"),
                "crp": _u(20.0, "mg/L"),
                "il6": _u(10.0, "pg/mL"),
                "ldh": _u(300, "U/L"),
            },
        )
        yield ("ct_score", {"timepoint": tp, "date": day, "total": 40 + i % 20})
    for d in range(1, doses + 1):
        due = datetime.combine(enrolled + timedelta(days=d), datetime.min.time()).replace(hour=9)
        t = due.isoformat() + ZONE
        yield (
            "vitals",
            {
                "timepoint": "pre_dose",
                "dose": d,
                "time": t.replace("09:00", "08:45"),
                "temp": _u(37.1, "C"),
                "pulse": _u(80, "beats/min"),
                "resp": _u(20, "breaths/min"),
                "oxysat": _u(94, "%"),
            },
        )
        yield (
            "dose",
            {
                "kit_id": f"K{i}-{d}",
                "lot": "LOT-A1",
                "particles": _u(2.0e8, "particles"),
                "volume": _u(6.0, "mL"),
                "start": t,
                "end": t.replace("09:00", "09:30"),
                "given_by": "admin",
                "dose_number": d,
                "day": d,
                "due": due.isoformat() + ZONE,
                "window": "on_time",
            },
        )
        yield (
            "vitals",
            {
                "timepoint": "post_dose",
                "dose": d,
                "time": t.replace("09:00", "09:45"),
                "temp": _u(37.2, "C"),
                "pulse": _u(82, "beats/min"),
                "resp": _u(19, "breaths/min"),
                "oxysat": _u(95, "%"),
            },
        )
    # Left out when fewer doses were given: the post-treatment labs and CT come after the last dose,
    # but keeping them in place keeps every participant's record count the same (simpler sizing).


def generate(
    session: Any,
    events: int,
    *,
    start: int = 0,
    batch: int = 500,
    today: date | None = None,
    in_treatment: int = 40,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Append about `events` record events for participants `start`, `start`+1, ...

    Returns (participants written, events written). The last `in_treatment`
    participants written are enrolled within the five days before `today`
    with one dose per day since.
    """
    from wardcrf.photos import importing

    import wardcrf.workflow  # noqa: F401  (the workflow's projectors run as on a ward)
    from wardcrf import records, signatures, users
    from wardcrf.eventlog import Author, append

    n = max(1, events // EVENTS_PER_PARTICIPANT)
    signers = []
    for name, meaning in (
        (session.user, "authored"),
        (WITNESSES[0], "witnessed"),
        (WITNESSES[1], "witnessed"),
    ):
        user = users.get(session.store, name)
        assert user is not None, f"generate needs user {name} (see new_site)"
        signers.append((Author(user=name, role=user["role"]), meaning, user["full_name"]))
    today = today or date.today()
    written = 0
    for first in range(start, start + n, batch):
        with session.store.transaction():
            for i in range(first, min(start + n, first + batch)):
                subject = f"participant:BENCH-{i + 1:05d}"
                photo = importing.import_bytes(session, f"consent-{i + 1}.jpg", consent_page(i)).ref
                written += 1
                recent = start + n - i <= in_treatment
                if recent:
                    ago = (start + n - i) % 5 + 1
                    gen = participant_records(
                        i, enrolled=today - timedelta(days=ago), doses=ago - 1, photo=photo
                    )
                else:
                    gen = participant_records(i, photo=photo)
                for form, data in gen:
                    event = records.submit(session, form, data, subject=subject)
                    written += 1
                    if form == "consent":
                        signed = signatures.content_hash(session.store, event.id)
                        for author, meaning, full_name in signers:
                            body = {
                                "target": event.id,
                                "signed_hash": signed,
                                "meaning": meaning,
                                "signer": author.user,
                                "full_name": full_name,
                            }
                            append(
                                session.store,
                                session.ctx,
                                author,
                                type="signature.applied",
                                subject=subject,
                                body=body,
                            )
                            written += 1
        if on_progress:
            on_progress(written)
    return n, written


PASSWORD = "bench-password-1"


def new_site(data_dir: Any, site: str = "BENCH") -> Any:
    """A new site with an admin, clinicians and an investigator (all `PASSWORD`); returns a clinician's session.

    Records are entered by a clinician, the role the forms allow, as on a
    ward; the consent's witnesses are other users of the site.
    """
    from wardcrf import users
    from wardcrf.site import Site

    init = Site.init(data_dir, site=site, device_name="bench", admin="admin", password=PASSWORD)
    admin = init.site.unlock("admin", PASSWORD)
    try:
        for name, role in (
            ("clinician", "clinician"),
            ("clinician2", "clinician"),
            ("investigator", "investigator"),
        ):
            users.add_user(admin, name, f"Bench {name.title()}", role, PASSWORD)
    finally:
        admin.close()
    return Site.open(data_dir).unlock("clinician", PASSWORD)
