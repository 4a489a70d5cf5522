"""Who may sign bundles, who may read them: registry events and their projections.

Which device may originate each of these types (most are the hub's alone)
is `wardcrf.authority`'s table, checked before any projector here runs; a
body's `site` is the site a hub event is addressed to, never its author.

Everything here that changes trust is an event, so the audit trail shows who
registered which device key, which hub a ward trusts and who was added as a
recipient (who can read the site's data). Projectors are deterministic
upserts (`db rebuild --check` reproduces `sync_devices`, `sync_hub`,
`sync_recipients`, `sync_queries`, `sync_decisions`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypedDict, cast

from wardcrf import workflow
from wardcrf.canonical import dumps
from wardcrf.errors import Refused, UsageError
from wardcrf.eventlog import Event
from wardcrf.sqlstore import SqlStore, common_dialect
from wardcrf.store import Store

from .bundle import Signer
from .cards import Card

if TYPE_CHECKING:
    from wardcrf.features import Registry
    from wardcrf.site import Session


class DataQuery(TypedDict):
    """A data query the hub raised about a ward record (a `sync_queries` row; a test checks the
    keys are the table's columns)."""

    query_id: str
    site: str
    target_event: str
    field: str
    question: str
    status: str
    """``open``, ``answered`` or ``closed``."""
    raised_by: str | None
    answer_event: str | None
    answer: str | None
    closed_event: str | None


class HubDecision(TypedDict):
    """A DSMG decision the hub sent to this site (a `sync_decisions` row, `detail` as written)."""

    event_id: str
    site: str
    decision: str
    detail: Any
    """What the hub wrote (JSON: usually text), "" when it wrote nothing."""
    decided_by: str | None
    ts: str


class QueryTarget(DataQuery):
    """A query with the record it is about and the queried field's current value (`query_target`)."""

    form: str | None
    subject: str | None
    value: Any
    amendable: bool
    """Whether the record is a form record on this laptop (it can be answered by an amendment)."""


def own_site(store: Store) -> tuple[str, str, str]:
    """(site, device, kind) of this database."""
    row = store.one("SELECT site, device, kind FROM site WHERE id = 1")
    if row is None:
        raise Refused("this database has no site identity (not initialised)")
    return row[0], row[1], row[2]


def own_card(store: Store) -> Card:
    from wardcrf import devicekeys

    site, device, kind = own_site(store)
    name = store.scalar("SELECT device_name FROM site WHERE id = 1")
    keys = devicekeys.load(store, device)
    if keys is None:
        raise Refused(f"device {device} has no keys (database predates sync keys)")
    return Card(kind, site, device, name, keys.key_id, keys.sign_public, keys.age_recipient)


# -- hub registry ------------------------------------------------------------------


def register_device(session: Session, card: Card, *, replaces: str | None = None) -> Event:
    """Hub: trust a ward device's keys for bundles from its site."""
    session.require("hub.manage", what="register devices")
    if own_site(session.store)[2] != "hub":
        raise UsageError("register-device runs on a hub data directory (wardcrf hub init)")
    if card.kind != "ward":
        raise UsageError(f"card for {card.device} is a {card.kind} card; register ward devices")
    existing = device(session.store, card.device)
    if existing is not None:
        if existing["key_id"] == card.key_id and existing["age_recipient"] == card.age_recipient:
            raise Refused(f"device {card.device} is already registered with these keys")
        raise Refused(f"device id {card.device} is already registered with other keys (a clone?); refused")
    clash = session.store.one("SELECT device FROM sync_devices WHERE key_id = ?", (card.key_id,))
    if clash:
        raise Refused(f"key {card.key_id} is already registered for device {clash[0]}; refused")
    if replaces is not None:
        old = device(session.store, replaces)
        if old is None or old["site"] != card.site:
            raise Refused(f"cannot replace {replaces}: not a registered device of site {card.site}")
    body: dict[str, Any] = {**card.as_dict(), "replaces": replaces}
    return session.append(type="hub.device_registered", subject=f"device:{card.device}", body=body).event


def retire_device(session: Session, device_id: str, reason: str) -> Event:
    session.require("hub.manage", what="retire devices")
    if device(session.store, device_id) is None:
        raise Refused(f"unknown device {device_id}")
    return session.append(
        type="hub.device_retired", subject=f"device:{device_id}", body={"device": device_id}, reason=reason
    ).event


def device(store: Store, device_id: str) -> dict[str, Any] | None:
    rows = store.rows("SELECT * FROM sync_devices WHERE device = ?", (device_id,))
    return rows[0] if rows else None


def devices(store: Store) -> list[dict[str, Any]]:
    return store.rows("SELECT * FROM sync_devices ORDER BY site, device")


def hub_lookup(store: Store) -> Any:
    """Hub side: signer for a key id from the registry (retired devices refused)."""

    def lookup(key_id: str) -> Signer | None:
        row = store.one(
            "SELECT device, site, sign_public, key_id, status, kind FROM sync_devices WHERE key_id = ?",
            (key_id,),
        )
        if row is None:
            return None
        if row[4] == "retired":
            raise Refused(f"device {row[0]} is retired; its bundles are no longer accepted")
        return Signer(row[0], row[1], row[2], row[3], row[5])

    return lookup


def _registered(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        "INSERT INTO sync_devices (device, site, name, kind, sign_public, key_id, age_recipient, status,"
        " replaces, registered_event, updated_event) VALUES (?,?,?,?,?,?,?,'active',?,?,?)"
        " ON CONFLICT(device) DO NOTHING",
        (
            b["device"],
            b["site"],
            b["name"],
            b["kind"],
            b["sign_public"],
            b["key_id"],
            b["age_recipient"],
            b.get("replaces"),
            e.id,
            e.id,
        ),
    )
    if b.get("replaces"):
        store.execute(
            "UPDATE sync_devices SET status = 'retired', flag_reason = ?, updated_event = ? WHERE device = ?",
            (f"replaced by {b['device']}", e.id, b["replaces"]),
        )


def _retired(store: Store, e: Event) -> None:
    store.execute(
        "UPDATE sync_devices SET status = 'retired', flag_reason = ?, updated_event = ? WHERE device = ?",
        (e.reason, e.id, e.body["device"]),
    )


def _held(store: Store, e: Event) -> None:
    store.execute(
        "UPDATE sync_devices SET status = 'flagged', flag_reason = ?, updated_event = ?"
        " WHERE device = ? AND status != 'retired'",
        (f"{e.body['reason']} at bundle {e.body['bundle_seq']}", e.id, e.body["device"]),
    )


def _refused(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        "INSERT INTO sync_refusals (event_id, device, site, bundle_seq, file, reason, at) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT(event_id) DO NOTHING",
        (e.id, b.get("device"), b.get("site"), b.get("bundle_seq"), b["file"], b["reason"], e.ts),
    )


def _fork(store: Store, e: Event) -> None:
    store.execute(
        "UPDATE sync_devices SET status = 'flagged', flag_reason = ?, updated_event = ?"
        " WHERE device = ? AND status != 'retired'",
        (f"fork at bundle {e.body['bundle_seq']}", e.id, e.body["device"]),
    )


# -- ward: the hub it trusts, extra recipients ------------------------------------------


def set_hub(session: Session, card: Card, url: str | None = None) -> Event:
    session.require("sync.configure", what="choose the hub")
    if card.kind != "hub":
        raise UsageError(f"card {card.device} is a {card.kind} card; set-hub needs the hub's card")
    body = {**card.as_dict(), "url": url}
    return session.append(type="sync.hub_set", subject=f"device:{card.device}", body=body).event


def hub(store: Store) -> dict[str, Any] | None:
    rows = store.rows("SELECT * FROM sync_hub WHERE id = 1")
    return rows[0] if rows else None


def hub_url(session: Session) -> str | None:
    """The configured hub URL on a ward laptop, or None (no hub, no URL, or a hub's own database)."""
    session.require("record.read", what="read the sync settings")
    if own_site(session.store)[2] != "ward":
        return None
    h = hub(session.store)
    return h["url"] if h and h["url"] else None


def require_hub(store: Store) -> dict[str, Any]:
    h = hub(store)
    if h is None:
        raise UsageError("no hub configured: import the hub's card first (wardcrf sync set-hub CARD_FILE)")
    return h


def add_recipient(session: Session, recipient: str, label: str) -> Event:
    import re

    session.require("sync.configure", what="add bundle recipients")
    recipient = recipient.strip()
    if not re.fullmatch(r"age1[0-9a-z]{58}", recipient):
        raise UsageError("recipient must be an age X25519 recipient (age1..., from age-keygen -y)")
    if session.store.one("SELECT 1 FROM sync_recipients WHERE age_recipient = ?", (recipient,)):
        raise Refused(f"{recipient} is already a recipient")
    return session.append(
        type="sync.recipient_added",
        subject=f"site:{session.ctx.site}",
        body={"age_recipient": recipient, "label": label or "auditor"},
    ).event


def recipients(store: Store) -> list[dict[str, Any]]:
    return store.rows("SELECT * FROM sync_recipients ORDER BY age_recipient")


def _hub_set(store: Store, e: Event) -> None:
    if e.site != own_site(store)[0]:
        return
    b = e.body
    store.execute(
        "INSERT INTO sync_hub (id, device, site, name, sign_public, key_id, age_recipient, url, set_event)"
        " VALUES (1,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET device=excluded.device,"
        " site=excluded.site, name=excluded.name, sign_public=excluded.sign_public,"
        " key_id=excluded.key_id, age_recipient=excluded.age_recipient, url=excluded.url,"
        " set_event=excluded.set_event",
        (
            b["device"],
            b["site"],
            b["name"],
            b["sign_public"],
            b["key_id"],
            b["age_recipient"],
            b.get("url"),
            e.id,
        ),
    )


@common_dialect
def _recipient(store: Store, e: Event) -> None:
    # This site's own recipients only: at a hub a ward's `sync.recipient_added` (who may read that
    # ward's bundles) projects nothing, on either engine (the table is there, 0013-sync-recipients).
    if e.site != own_site(store)[0]:
        return
    store.execute(
        "INSERT INTO sync_recipients (age_recipient, label, added_event) VALUES (?,?,?)"
        " ON CONFLICT(age_recipient) DO NOTHING",
        (e.body["age_recipient"], e.body["label"], e.id),
    )


# -- data queries and DSMG decisions (hub -> ward -> hub) --------------------------------


def raise_query(
    session: Session,
    site: str,
    target_event: str,
    field: str,
    question: str,
    *,
    wards: SqlStore | None = None,
) -> Event:
    """Hub: ask a site about one field of one record.

    `wards`: where the hub keeps what its wards send (`hub.ledger_store`: its file, or its PostgreSQL
    database), where the record must be; the hub's file when not given.
    """
    session.require("query.raise", what="raise data queries")
    if not question.strip():
        raise UsageError("a query needs a question (--question)")
    if (wards or session.store).one("SELECT 1 FROM events WHERE id = ?", (target_event,)) is None:
        raise Refused(f"unknown record {target_event} (the hub has not received it)")
    return session.append(
        type="query.raised",
        subject=f"site:{site}",
        body={"site": site, "target_event": target_event, "field": field, "question": question.strip()},
    ).event


def answer_query(session: Session, query_id: str, answer: str, *, amendment: str | None = None) -> Event:
    """Ward: answer a query by a comment (and optionally name the amendment that fixed it)."""
    session.require("record.comment", what="answer data queries")
    q = session.store.rows("SELECT * FROM sync_queries WHERE query_id = ?", (query_id,))
    if not q:
        raise Refused(f"unknown query {query_id}")
    if q[0]["status"] == "closed":
        raise Refused(f"query {query_id} is closed")
    if not answer.strip():
        raise UsageError("an answer needs text (--answer)")
    return session.append(
        type="query.answered",
        subject=f"site:{q[0]['site']}",
        body={"query": query_id, "answer": answer.strip(), "amendment": amendment},
    ).event


def query_target(session: Session, query_id: str) -> QueryTarget:
    """The record a query is about and the queried field's current value (to answer it)."""
    session.require("record.read", what="read data queries")
    q = session.store.rows("SELECT * FROM sync_queries WHERE query_id = ?", (query_id,))
    if not q:
        raise Refused(f"unknown query {query_id}")
    row = session.store.one(
        "SELECT form, subject, data FROM records WHERE event_id = ?", (q[0]["target_event"],)
    )
    query = cast(DataQuery, q[0])
    return QueryTarget(
        **query,
        form=row[0] if row else None,
        subject=row[1] if row else None,
        value=json.loads(row[2]).get(query["field"]) if row else None,
        amendable=row is not None,
    )


def answer_by_amendment(
    session: Session, query_id: str, answer: str, *, value: Any, reason: str, confirm: bool = False
) -> tuple[Event, Event]:
    """Ward: correct the queried field (an amendment with its reason) and answer the query
    naming that amendment, together or not at all. Returns (amendment, answer)."""
    session.require("record.amend", what="answer queries by an amendment")  # before reading the query

    q = query_target(session, query_id)
    if q["status"] == "closed":
        raise Refused(f"query {query_id} is closed")
    if not q["amendable"]:
        raise Refused(
            f"{q['target_event']} is not a form record on this laptop; answer query {query_id} by a comment"
        )
    if not answer.strip():
        raise UsageError("an answer needs text (--answer)")
    with session.store.transaction():
        amended = workflow.amend(
            session, q["target_event"], {q["field"]: value}, reason=reason, confirm=confirm
        )
        answered = answer_query(session, query_id, answer, amendment=amended.id)
    return amended, answered


def close_query(session: Session, query_id: str, note: str) -> Event:
    """Hub: the coordinator accepts the answer."""
    session.require("query.raise", what="close data queries")
    q = session.store.rows("SELECT status FROM sync_queries WHERE query_id = ?", (query_id,))
    if not q:
        raise Refused(f"unknown query {query_id}")
    if q[0]["status"] == "closed":
        raise Refused(f"query {query_id} is already closed")
    return session.append(type="query.closed", subject=None, body={"query": query_id, "note": note}).event


def queries(store: SqlStore, status: str | None = None) -> list[DataQuery]:
    """The data queries (with `status`: those in it), by id."""
    if status:
        rows = store.rows("SELECT * FROM sync_queries WHERE status = ? ORDER BY query_id", (status,))
    else:
        rows = store.rows("SELECT * FROM sync_queries ORDER BY query_id")
    return cast(list[DataQuery], rows)


def send_decision(session: Session, site: str, decision: str, detail: str) -> Event:
    """Hub: a DSMG decision for a site, delivered in the next hub bundle."""
    session.require("dsmg.decide", what="send DSMG decisions")
    if not decision.strip():
        raise UsageError("a decision needs a short title (--decision)")
    return session.append(
        type="dsmg.decision",
        subject=f"site:{site}",
        body={"site": site, "decision": decision.strip(), "detail": detail},
    ).event


def decisions_received(store: Store) -> list[HubDecision]:
    """DSMG decisions the hub sent to this site, newest first (detail as written at the hub)."""
    out = []
    for row in store.rows("SELECT * FROM sync_decisions ORDER BY ts DESC, event_id"):
        row["detail"] = json.loads(row["detail"]) if row["detail"] else ""
        out.append(cast(HubDecision, row))
    return out


def decisions_from_hub(session: Session) -> list[HubDecision]:
    """`decisions_received` on a ward laptop, for a signed-in user; none on a hub's own database."""
    session.require("record.read", what="read DSMG decisions")
    if own_site(session.store)[2] != "ward":
        return []
    return decisions_received(session.store)


def _concerns_here(store: Store, site: str) -> bool:
    """A hub projects every site's queries; a ward only its own (the hub chain carries all)."""
    own, _, kind = own_site(store)
    return kind == "hub" or site == own


@common_dialect
def _query_raised(store: Store, e: Event) -> None:
    b = e.body
    if not _concerns_here(store, b["site"]):
        return
    store.execute(
        "INSERT INTO sync_queries (query_id, site, target_event, field, question, status, raised_by)"
        " VALUES (?,?,?,?,?,'open',?) ON CONFLICT(query_id) DO NOTHING",
        (e.id, b["site"], b["target_event"], b["field"], b["question"], e.user),
    )


@common_dialect
def _query_opened(store: Store, e: Event) -> None:
    """A query a protocol rule opened on the ward with the record it is about (`query.opened`):
    raised by ``rule:CODE``, on the site of the device that saved the record (its envelope)."""
    b = e.body
    if not _concerns_here(store, e.site):
        return
    store.execute(
        "INSERT INTO sync_queries (query_id, site, target_event, field, question, status, raised_by)"
        " VALUES (?,?,?,?,?,'open',?) ON CONFLICT(query_id) DO NOTHING",
        (e.id, e.site, b["target_event"], b["field"], b["question"], f"rule:{b['rule']}"),
    )


@common_dialect
def _query_answered(store: Store, e: Event) -> None:
    # Only a query raised to the answering device's own site (its envelope),
    # which import has already required (`wardcrf.authority`).
    store.execute(
        "UPDATE sync_queries SET status = CASE WHEN status = 'closed' THEN 'closed' ELSE 'answered' END,"
        " answer_event = ?, answer = ? WHERE query_id = ? AND site = ?",
        (
            e.id,
            dumps({"answer": e.body["answer"], "amendment": e.body.get("amendment")}),
            e.body["query"],
            e.site,
        ),
    )


@common_dialect
def _query_closed(store: Store, e: Event) -> None:
    store.execute(
        "UPDATE sync_queries SET status = 'closed', closed_event = ? WHERE query_id = ?",
        (e.id, e.body["query"]),
    )


@common_dialect
def _decision(store: Store, e: Event) -> None:
    b = e.body
    if not _concerns_here(store, b["site"]):
        return
    store.execute(
        "INSERT INTO sync_decisions (event_id, site, decision, detail, decided_by, ts) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(event_id) DO NOTHING",
        (e.id, b["site"], b["decision"], json.dumps(b.get("detail", ""), ensure_ascii=False), e.user, e.ts),
    )


# -- user changes sent from the hub ----------------------------------------------------

USER_ACTIONS = ("deactivate", "lock", "unlock")


def send_user_change(session: Session, site: str, username: str, action: str, reason: str) -> Event:
    """Hub: deactivate, lock or unlock a ward account (e.g. staff who left); applied at the
    ward when the hub bundle arrives. New accounts need a password, so they are made on the ward."""
    session.require("user.manage", what="send user changes to sites")
    if action not in USER_ACTIONS:
        raise UsageError(f"unknown user change {action!r} (allowed: {', '.join(USER_ACTIONS)})")
    if not reason.strip():
        raise UsageError("a user change needs a reason (--reason)")
    return session.append(
        type="hub.user_change",
        subject=f"user:{username}",
        body={"site": site, "username": username, "action": action},
        reason=reason.strip(),
    ).event


def _user_change(store: Store, e: Event) -> None:
    own, _, kind = own_site(store)
    b = e.body
    if kind != "ward" or b["site"] != own:
        return
    column = {"deactivate": "active = 0", "lock": "locked = 1", "unlock": "locked = 0, failed_logins = 0"}
    store.execute(
        f"UPDATE users SET {column[b['action']]}, updated_event = ? WHERE id = ?", (e.id, b["username"])
    )


def register(registry: Registry) -> None:
    """Plug this module's projections and checks in (`wardcrf.features`)."""
    registry.projector(_registered, "hub.device_registered")
    registry.projector(_retired, "hub.device_retired")
    registry.projector(_held, "sync.bundle_held")
    registry.projector(_refused, "sync.bundle_refused")
    registry.projector(_fork, "sync.fork_detected")
    registry.projector(_hub_set, "sync.hub_set")
    registry.projector(_recipient, "sync.recipient_added")
    registry.projector(_query_raised, "query.raised")
    registry.projector(_query_opened, "query.opened")
    registry.projector(_query_answered, "query.answered")
    registry.projector(_query_closed, "query.closed")
    registry.projector(_decision, "dsmg.decision")
    registry.projector(_user_change, "hub.user_change")
