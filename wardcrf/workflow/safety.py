"""Safety: adverse events, DSMG decisions and reviews, and the casebook sign-off.

* An adverse event carries its CTCAE grade, seriousness with the six ICH E2A
  criteria, WHO-UMC causality, action and outcome. A serious event gets an
  expedited-report due date (7 days from first knowledge if fatal or
  life-threatening, else 15) and stays on the DSMG's review list until a DSMG
  member records its relatedness.
* DSMG decisions gate the trial: the latest decision site-wide holds sway.
  "stop" halts all dosing and enrollment; "alter" holds them until a new
  protocol version is loaded after it (the amendment); "continue" on a
  sentinel participant opens the sentinel gate (see `participants`).
* A prespecified event named in a post-dose check expects an AE form
  (`expected_aes`): an open item until recorded, and the casebook cannot be
  signed off before.
* The investigator signs a casebook off with an e-signature meaning
  "approved" over everything recorded for the participant; any later change
  shows it as "changed since signed".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from ..errors import Confirmable, Refused
from ..eventlog import Event
from ..forms import plain
from ..records import Record
from ..sqlstore import common_dialect, upsert
from ..store import Store
from .base import RULES, FormRule, Participant, RuleContext, records_of, require_participant

if TYPE_CHECKING:
    from ..engine.model import Model
    from ..features import Registry
    from ..protocol import Protocol
    from ..site import Session

SERIOUS_CRITERIA = (
    "death",
    "life_threatening",
    "hospitalization",
    "disability",
    "congenital_anomaly",
    "medically_important",
)
EXPEDITED_DAYS_FATAL = 7
EXPEDITED_DAYS_OTHER = 15


# -- DSMG ---------------------------------------------------------------------------------


def dsmg_form(store: Store) -> tuple[str, str, dict[str, str]]:
    """(form, field, recorded code -> continue/stop/alter) of the active version's DSMG decisions."""
    from .. import protocol as protocols

    try:
        m = protocols.active(store).engine  # the DSMG decides for the site, under its active version
    except Refused:
        m = None
    dsmg = m.data.get("dsmg", {}) if m is not None else {}
    if not dsmg:
        return "dsmg_decision", "decision", {}
    codes = {str(dsmg[k]): k for k in ("continue", "stop", "alter") if k in dsmg}
    return str(dsmg.get("form", "dsmg_decision")), str(dsmg.get("field", "decision")), codes


class Decision(TypedDict):
    """A recorded DSMG decision (`decisions`): the dashboard's gate panel, the DSMG board."""

    event: str
    participant: str
    decision: str
    """continue, stop or alter (a format-2 protocol's own code when it names none of them)."""
    time: str | None
    pos: int
    """The decision's place in the event log (an alter holds until a protocol loaded after it)."""
    rationale: str | None
    change: str | None


def decisions(store: Store, *, participant: str | None = None, decision: str | None = None) -> list[Decision]:
    """DSMG decisions in log order: event, participant, decision, time, pos.

    `decision` is one of `continue`, `stop`, `alter`, whatever codes the protocol's form records them
    with: a format-2 version's `[dsmg]` names its form, its field and the code of each (`dsmg_form`).
    """
    form, field, codes = dsmg_form(store)
    sql = (
        "SELECT r.event_id, r.subject, r.data, e.pos FROM records r JOIN events e ON e.id = r.event_id"
        " WHERE r.form = ?"
    )
    params: list[Any] = [form]
    if participant:
        sql += " AND r.subject = ?"
        params.append(f"participant:{participant}")
    out: list[Decision] = []
    for event_id, subject, data, pos in store.execute(sql + " ORDER BY e.pos", params):
        d = json.loads(data)
        said = codes.get(str(d.get(field)), d.get(field))
        if decision and said != decision:
            continue
        out.append(
            {
                "event": event_id,
                "participant": (subject or "").removeprefix("participant:"),
                "decision": said,
                "time": d.get("time"),
                "pos": pos,
                "rationale": d.get("rationale"),
                "change": d.get("change"),
            }
        )
    return out


def hold(store: Store) -> str | None:
    """Why dosing and enrollment are held by the DSMG now, or None.

    The latest decision governs: a "stop" holds until the DSMG records a later
    "continue"; an "alter" holds until a protocol version is loaded after it.
    """
    all_ = decisions(store)
    if not all_:
        return None
    last = all_[-1]
    if last["decision"] == "stop":
        return (
            f"the DSMG recorded 'stop' ({last['event']}, about {last['participant']}): "
            "all dosing and enrollment are halted"
        )
    if last["decision"] == "alter":
        newest = (
            store.scalar("SELECT max(e.pos) FROM protocols p JOIN events e ON e.id = p.loaded_event") or 0
        )
        if newest < last["pos"]:
            return (
                f"the DSMG recorded 'alter' ({last['event']}): load the amended protocol "
                "(a new protocol version) before proceeding"
            )
    return None


def require_no_hold(store: Store, what: str) -> None:
    why = hold(store)
    if why:
        raise Refused(f"cannot {what}: {why}")


def review_form(store: Store) -> tuple[str, str, str | None, str | None] | None:
    """(form, AE field, relatedness field, unexpected field) of the DSMG's review of a serious AE under the
    active version: its `[safety] dsmg_review`, or None when it declares none (no review is owed). A
    format-1 version the engine cannot run (stored before it ran format 1) reads its stored reviews with
    the declaration of the re-encoding every format-1 version runs on (`reencode_v1.base_model`)."""
    from .. import protocol as protocols
    from ..engine import reencode_v1

    try:
        proto = protocols.active(store)  # the DSMG reviews for the site, under its active version
    except Refused:
        return None
    m = proto.engine if proto.engine is not None else reencode_v1.base_model()
    declared = m.data.get("safety", {}).get("dsmg_review")
    if not declared:
        return None
    rel, unexp = declared.get("relatedness"), declared.get("unexpected")
    return (
        str(declared["form"]),
        str(declared["ae_field"]),
        None if rel is None else str(rel),
        None if unexp is None else str(unexp),
    )


class Review(NamedTuple):
    """A DSMG review record: its event, the AE event it names, and its values (the protocol's review form)."""

    record: str
    ae: str
    values: dict[str, Any]


def reviews(store: Store) -> list[Review]:
    """Every DSMG review, in log order."""
    declared = review_form(store)
    if declared is None:
        return []
    form, ae_field = declared[0], declared[1]
    out = []
    for event_id, data in store.execute(
        "SELECT r.event_id, r.data FROM records r JOIN events e ON e.id = r.event_id"
        " WHERE r.form = ? ORDER BY e.pos",
        (form,),
    ):
        d = json.loads(data)
        if d.get(ae_field):
            out.append(Review(str(event_id), str(d[ae_field]), d))
    return out


def check_review(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> None:
    """`[safety] dsmg_review` on a format-2 ward: the record names a serious AE of its participant."""
    from .. import text

    p = ctx.participant
    assert p is not None
    field = str(m.data["safety"]["dsmg_review"]["ae_field"])
    named = v.get(field)
    if named in (None, ""):
        return  # `required` is the form's
    theirs = [
        str(r[0])
        for r in ctx.store.execute(
            "SELECT event_id FROM adverse_events WHERE participant = ? AND serious = 1 ORDER BY event_id",
            (p.id,),
        )
    ]
    listed = f"their serious adverse events: {', '.join(theirs)}" if theirs else "none recorded"
    row = ctx.store.one("SELECT participant, serious FROM adverse_events WHERE event_id = ?", (str(named),))
    if row is None:
        ctx.problem(field, f"{text.excerpt(str(named))} is not an adverse event record of {p.id} ({listed})")
    elif row[0] != p.id:
        ctx.problem(field, f"{named} is an adverse event of {row[0]}, not {p.id} ({listed})")
    elif not row[1]:
        ctx.problem(
            field, f"{named} is not a serious adverse event: the DSMG reviews serious ones ({listed})"
        )


def review_list(store: Store) -> list[dict[str, Any]]:
    """Serious adverse events awaiting the DSMG's relatedness judgement: until a review record names them
    (the version's `[safety] dsmg_review`, `review_form`; none owed without one)."""
    if review_form(store) is None:
        return []
    reviewed = {ae for _event, ae, _values in reviews(store)}
    return [
        r
        for r in store.rows("SELECT * FROM adverse_events WHERE serious = 1 ORDER BY first_known, event_id")
        if r["event_id"] not in reviewed
    ]


# -- adverse events -------------------------------------------------------------------------


def report_due(first_known: date, fatal_or_life_threatening: bool) -> date:
    return first_known + timedelta(
        days=EXPEDITED_DAYS_FATAL if fatal_or_life_threatening else EXPEDITED_DAYS_OTHER
    )


def check_ae(ctx: RuleContext, v: dict[str, Any]) -> dict[str, Any]:
    """Seriousness agrees with its criteria, grade 5 with death, dates in order."""
    p = ctx.participant
    assert p is not None
    serious = v.get("serious")
    flagged = [c for c in SERIOUS_CRITERIA if v.get(c)]
    if serious is True and not flagged:
        ctx.problem(
            "serious",
            "a serious event needs at least one criterion: " + ", ".join(SERIOUS_CRITERIA),
        )
    if serious is False and flagged:
        ctx.problem("serious", f"criteria {', '.join(flagged)} make the event serious: set serious=yes")
    grade = plain(v.get("grade"))
    death = bool(v.get("death"))
    if grade == 5 and not death:
        ctx.problem("death", "CTCAE grade 5 is death: set death=yes (and outcome=fatal)")
    if death and grade is not None and grade != 5:
        ctx.problem("grade", f"an event resulting in death is grade 5, not {grade}")
    if (v.get("outcome") == "fatal") != death and v.get("outcome") is not None:
        ctx.problem("outcome", "outcome 'fatal' goes with death=yes, and only with it")
    onset, end, known = (
        date.fromisoformat(v[k]) if v.get(k) else None for k in ("onset", "end", "first_known")
    )
    if onset and end and end < onset:
        ctx.problem("end", f"{end} is before the onset {onset}")
    if onset and known and known < onset:
        ctx.problem("first_known", f"{known} is before the onset {onset}")
    dose = v.get("dose")
    if dose is not None and not ctx.store.one(
        "SELECT 1 FROM doses WHERE participant = ? AND dose_number = ?", (p.id, dose)
    ):
        ctx.problem("dose", f"dose {dose} has not been recorded for {p.id}")
    if ctx.amending is None and onset and v.get("term") and not ctx.confirmed:
        # the same event submitted twice (Enter pressed twice in gloves) would be reported twice
        same = ctx.store.one(
            "SELECT event_id FROM adverse_events WHERE participant = ? AND onset = ? AND lower(trim(term)) = ?",
            (p.id, onset.isoformat(), str(v["term"]).strip().lower()),
        )
        if same:
            ctx.problem(
                "term",
                Confirmable(
                    f"{p.id} already has an adverse event '{v['term']}' with onset {onset} ({same[0]}); "
                    "if this is a separate event, confirm it (--confirm) with a reason (--reason)"
                ),
            )
    if serious and known:
        fatal = death or bool(v.get("life_threatening"))
        return {"report_due": report_due(known, fatal).isoformat()}
    return {"report_due": None} if ctx.amending else {}


_AE_UPSERT = upsert(
    "adverse_events",
    ("event_id", "participant", "term", "prespecified", "onset", '"end"', "grade", "serious", "causality",
     "outcome", "first_known", "report_due"),
    ("event_id",),
)  # fmt: skip


@common_dialect
def _ae_hook(store: Store, rec: Record) -> None:
    d = rec.data
    store.execute(
        _AE_UPSERT,
        (
            rec.event_id,
            (rec.subject or "").removeprefix("participant:"),
            d.get("term"),
            d.get("prespecified"),
            d.get("onset"),
            d.get("end"),
            plain(d.get("grade")),
            int(bool(d.get("serious"))),
            d.get("causality"),
            d.get("outcome"),
            d.get("first_known"),
            d.get("report_due"),
        ),
    )


# -- prespecified events reported after a dose ----------------------------------------------


class ExpectedAe(TypedDict):
    """A prespecified event a post-dose check reported that has no adverse event form yet (`expected_aes`)."""

    event: str
    """The prespecified event's code."""
    dose: int | None
    check: str
    """The post-dose check's event."""
    time: str | None
    detail: str


def check_of(m: Model | None) -> Mapping[str, Any] | None:
    """`[safety] check` of a format-2 version (None: it declares none)."""
    if m is None:
        return None
    return m.data.get("safety", {}).get("check") or None


def check_records(c: Mapping[str, Any]) -> str:
    """What the ward calls the `[safety] check`'s records: its `label` ("post-dose checks"), else "FORM records"."""
    label = c.get("label")
    if isinstance(label, Mapping):
        label = label.get("en") or next(iter(label.values()), None)
    return str(label) if label else f"{c['form']} records"


def check_none_alone(ctx: RuleContext, m: Model, v: Mapping[str, Any]) -> None:
    """`[safety] check`: its `none` code is the whole answer or not given."""
    c = check_of(m)
    assert c is not None
    name, none = str(c["field"]), str(c["none"])
    events = v.get(name) or []
    if none in events and len(events) > 1:
        ctx.problem(name, f"{none!r} cannot be combined with events: either {none!r} or the events seen")


def expected_aes(store: Store, pid: str, proto: Protocol | None = None) -> list[ExpectedAe]:
    """Prespecified events reported in a post-administration check that have no adverse event form yet.

    The version's (the participant's, or `proto`) `[safety] check` with `expect_ae` (`_expected_declared`);
    a format-1 version the engine cannot run reads its stored checks with the declaration of the
    re-encoding every format-1 version runs on (`reencode_v1.base_model`).
    """
    if proto is None:
        from .amendments import protocol_of
        from .base import get_participant

        proto = protocol_of(store, get_participant(store, pid))
    if proto.engine is not None:
        return _expected_declared(store, pid, proto.engine)
    from ..engine import reencode_v1

    return _expected_declared(store, pid, reencode_v1.base_model())


def _expected_declared(store: Store, pid: str, m: Model) -> list[ExpectedAe]:
    """`[safety] check` with `expect_ae`: each event a check record names, other than `none`, unless an AE of
    that `prespecified` code names the same administration (`[safety] ae_link`) or was ongoing on the day
    the check was asked (its form's first date-time field, local date as stored)."""
    c = check_of(m)
    if c is None or not c.get("expect_ae"):
        return []
    form, name, none, link = str(c["form"]), str(c["field"]), str(c["none"]), str(c["link"])
    ae_link = m.data.get("safety", {}).get("ae_link")
    fields = m.data.get("forms", {}).get(form, {}).get("fields", {})
    when = next((n for n, f in fields.items() if f.get("type") == "datetime"), None)
    aes = [a for a in records_of(store, pid, "ae") if a.get("prespecified") not in (None, "no")]
    if ae_link:
        aes = [{**a, "dose": a.get(str(ae_link))} for a in aes]
    else:
        aes = [{k: v for k, v in a.items() if k != "dose"} for a in aes]
    out: list[ExpectedAe] = []
    for check in records_of(store, pid, form):
        n = check.get(link)
        day = str(check.get(when) or "")[:10] if when else ""
        for code in check.get(name) or []:
            if code == none or any(_covers(ae, code, n, day) for ae in aes):
                continue
            named = f" {ae_link}={n}" if ae_link else ""
            out.append(
                {
                    "event": code,
                    "dose": n,
                    "check": check["_event"],
                    "time": check.get(when) if when else None,
                    "detail": f"AE form expected: {code} reported after {link} {n} "
                    f"({check['_event']}); record an adverse event with prespecified={code}{named}",
                }
            )
    return out


def _covers(ae: dict[str, Any], code: str, dose: Any, day: str) -> bool:
    if ae.get("prespecified") != code:
        return False
    if dose is not None and ae.get("dose") == dose:
        return True
    onset, end = ae.get("onset"), ae.get("end")
    return bool(day and onset and onset <= day and (not end or end >= day))


# -- casebook sign-off -------------------------------------------------------------------------

# Not a record: `service.submit` turns the signoff form into an e-signature.
RULES["signoff"] = FormRule(action="casebook.signoff", amend_action="casebook.signoff", needs_consent=False)


def sign_off(session: Session, participant: str, *, password: str, note: str | None = None) -> Event:
    """The investigator approves everything recorded for the participant (e-signature)."""
    from .. import signatures

    p = signoff_check(session, participant)
    return signatures.sign(session, target=p.subject, meaning="approved", password=password, note=note)


def signoff_check(session: Session, participant: str | None) -> Participant:
    """Whether the casebook may be signed off now (raises `Refused`): checked before the password is asked.

    The sign-off itself runs it again (`sign_off`), so the rule has one owner.
    """
    session.require("casebook.signoff", what="sign off casebooks")
    p = require_participant(session.store, participant)
    from .amendments import protocol_of

    proto = protocol_of(session.store, p)
    missing = expected_aes(session.store, p.id, proto)
    if missing and proto.engine is not None:
        c = check_of(proto.engine)
        assert c is not None
        link, ae_link = str(c["link"]), proto.engine.data.get("safety", {}).get("ae_link")
        what = ", ".join(f"{m['event']} after {link} {m['dose']} ({m['check']})" for m in missing)
        named = f", {ae_link}=..." if ae_link else ""
        raise Refused(
            f"cannot sign off {p.id}: adverse event form(s) expected for prespecified events reported "
            f"in {check_records(c)}: {what}; record them (form ae, prespecified=...{named}) first"
        )
    if missing:
        what = ", ".join(f"{m['event']} after dose {m['dose']} ({m['check']})" for m in missing)
        raise Refused(
            f"cannot sign off {p.id}: adverse event form(s) expected for prespecified events reported "
            f"in post-dose checks: {what}; record them (form ae, prespecified=..., dose=...) first"
        )
    return p


class _SignedOff(TypedDict, total=False):
    """Who approved the casebook last (absent when nobody has)."""

    by: str
    full_name: str
    at: str
    event: str
    manifestation: str
    """The printed signature (21 CFR 11.50): name, date/time, meaning."""


class Signoff(_SignedOff):
    """A casebook's sign-off (`signoff_state`)."""

    state: str
    """not signed, signed, or changed since signed."""


def signoff_state(store: Store, participant: str) -> Signoff:
    """'not signed', 'signed' or 'changed since signed', from the latest approval."""
    from .. import signatures

    approvals = [
        s for s in signatures.for_target(store, f"participant:{participant}") if s.meaning == "approved"
    ]
    if not approvals:
        return {"state": "not signed"}
    last = approvals[-1]
    return {
        "state": "signed" if last.valid else "changed since signed",
        "by": last.user,
        "full_name": last.full_name,
        "at": last.signed_at,
        "event": last.event_id,
        "manifestation": last.manifestation(),
    }


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.form_hook(_ae_hook, "ae")


class OpenAe(TypedDict):
    """An adverse event still open (or an SAE still owing something)."""

    event: str
    term: str
    grade: int | None
    serious: bool
    onset: str | None
    report_due: str | None
    dsmg_review_pending: bool


def open_ae_lines(store: Store, aes: list[dict[str, Any]]) -> list[OpenAe]:
    """The participant's AEs still open (no end date, no final outcome), as the ward shows them.

    `aes`: their `adverse_events` rows. One answer for format 1's summary and the engine's. The reviews
    are read only when one of them is serious (`review_list` restricted to theirs): the ward list asks this
    per row, and a site-wide scan of the serious AEs per row would grow with the site.
    """
    serious = [a["event_id"] for a in aes if a["serious"] and is_open_ae(a)]
    pending: set[str] = set()
    if serious and review_form(store) is not None:
        reviewed = {ae for _event, ae, _values in reviews(store)}
        pending = {e for e in serious if e not in reviewed}
    return [
        {
            "event": a["event_id"],
            "term": a["term"],
            "grade": a["grade"],
            "serious": bool(a["serious"]),
            "onset": a["onset"],
            "report_due": a["report_due"],
            "dsmg_review_pending": a["event_id"] in pending,
        }
        for a in aes
        if is_open_ae(a)
    ]


def is_open_ae(a: dict[str, Any]) -> bool:
    """Still open: no end date and no final outcome."""
    return not a["end"] and a["outcome"] not in ("recovered", "recovered_with_sequelae", "fatal")
