"""Drafts: what a person has typed into a form that is not saved yet.

Nothing typed is ever lost: the ward app saves each open form as a draft
after every field, so Esc, quitting, the idle lock, a crash or a power cut
never costs a visit's worth of typing, and the same user is offered the
draft back at their next sign-in.

A draft is **not an event and not a record**. It says nothing happened; it
is the person's unfinished work. So it lives in its own table of the site
database (``drafts``, schema migration ``0091-drafts``), never in the log:
it is never synced in a bundle, never exported, not carried by a backup
(`backup` empties the table in the copy), untouched by ``db rebuild``, and
an auditor's trail shows the record when it is saved, as before.

One row per user and form context (``form`` + ``context``, e.g. ``vitals`` +
``participant:WUH01-001``), replaced at each save in one small transaction
(SQLite's journal makes it atomic: a crash leaves the previous save or this
one, never a mix). It keeps the user, when it was first and last saved, the
protocol version the form was opened under, the field that had the cursor,
and the values as typed (JSON, `FORMAT` 1: an object field -> value, where a
value is text, a number, yes/no, null, or a list/object of those).

Who: every role that fills in forms keeps drafts (`draft.keep`; auditors
fill in none); each person reads and discards only their own. An admin lists
everyone's (who, which form, when, how big: never the content) and purges
them (`draft.manage`); a purge is a ``draft.purged`` event naming the owner
and the count, so the audit trail shows that unsaved work was thrown away
and by whom. Drafts are protected by the database's encryption like every
record; they are not sealed again per user (docs/security.md says why).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from . import roles
from .clock import iso_utc, now_utc
from .errors import Refused, UsageError
from .eventlog import Event
from .store import Store

if TYPE_CHECKING:
    from .site import Session

T = TypeVar("T")

FORMAT = 1
"""Layout of `drafts.fields`: a JSON object, field name -> value as typed."""

MAX_BYTES = 64 * 1024
"""A draft's values as stored (JSON); a form's typed text is a few hundred bytes."""

MAX_PER_USER = 50
"""Unsaved forms one person may keep at once; more is a flood, not work in progress."""

MAX_DEPTH = 4
_FORM_RE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_FIELD_RE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_CONTEXT_RE = re.compile(r"[^\x00-\x1f\x7f]{0,200}")
_SECRET_RE = re.compile(r"passw|secret|recovery", re.IGNORECASE)


@dataclass(frozen=True)
class Draft:
    """One person's unsaved form: the values as typed and where the cursor was."""

    user: str
    form: str
    context: str
    fields: dict[str, Any]
    focus: str | None
    protocol: dict[str, str] | None
    created_at: str
    saved_at: str
    saves: int


@dataclass(frozen=True)
class DraftInfo:
    """What an admin sees of a draft: whose, which form, when, how big; never the values."""

    user: str
    form: str
    context: str
    created_at: str
    saved_at: str
    saves: int
    size: int
    field_count: int

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Purged:
    owner: str
    count: int
    event: Event


# -- the owner's own drafts ---------------------------------------------------------------


def save(
    session: Session,
    form: str,
    fields: dict[str, Any],
    *,
    context: str = "",
    focus: str | None = None,
) -> Draft | None:
    """Keep the form's values as typed (called after each field); returns the draft.

    A form with nothing typed in it (every value blank) has no draft: it is
    discarded instead and None is returned. Refused, saving nothing, for
    values that are not plain data, a field named like a password (a draft
    never keeps one), more than `MAX_BYTES`, or a person with `MAX_PER_USER`
    drafts already.
    """
    session.require("draft.keep", what="keep drafts of forms")
    form, context = _key(form, context)
    if focus is not None and not _FIELD_RE.fullmatch(focus):
        raise UsageError("draft focus must be a field name (1-64 printable characters)")
    if not isinstance(fields, dict):
        raise UsageError("draft values must be a mapping of field name to value")
    for name, value in fields.items():
        _check_field(name, value)
    if all(_blank(v) for v in fields.values()):
        discard(session, form, context=context)
        return None
    text = json.dumps(fields, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_BYTES:
        raise Refused(f"draft of {form} is too large ({len(text)} bytes; at most {MAX_BYTES})")
    store = session.store
    now = iso_utc(now_utc())
    proto = session.protocol or {}
    with store.transaction():
        row = store.one(
            "SELECT fields, focus FROM drafts WHERE user = ? AND form = ? AND context = ?",
            (session.user, form, context),
        )
        if row is not None and row[0] == text and row[1] == focus:
            return get(session, form, context=context)  # nothing changed: no write
        if row is None:
            held = int(store.scalar("SELECT count(*) FROM drafts WHERE user = ?", (session.user,)) or 0)
            if held >= MAX_PER_USER:
                raise Refused(
                    f"{session.user} already has {held} unsaved drafts; save or discard some first"
                    " (see `wardcrf draft list`)"
                )
        store.execute(
            "INSERT INTO drafts (user, form, context, format, fields, focus, protocol_id, protocol_version,"
            " created_at, saved_at, saves) VALUES (?,?,?,?,?,?,?,?,?,?,1)"
            " ON CONFLICT (user, form, context) DO UPDATE SET format = excluded.format,"
            " fields = excluded.fields, focus = excluded.focus, protocol_id = excluded.protocol_id,"
            " protocol_version = excluded.protocol_version, saved_at = excluded.saved_at,"
            " saves = drafts.saves + 1",
            (
                session.user,
                form,
                context,
                FORMAT,
                text,
                focus,
                proto.get("id"),
                proto.get("version"),
                now,
                now,
            ),
        )
    return get(session, form, context=context)


def get(session: Session, form: str, *, context: str = "") -> Draft | None:
    """The signed-in user's draft of this form and context, or None."""
    session.require("draft.keep", what="keep drafts of forms")
    form, context = _key(form, context)
    rows = session.store.rows(
        "SELECT * FROM drafts WHERE user = ? AND form = ? AND context = ?", (session.user, form, context)
    )
    return _draft(rows[0]) if rows else None


def mine(session: Session) -> list[Draft]:
    """The signed-in user's drafts, newest first: what to offer back at sign-in.

    A role that fills in no forms (an auditor) has none: an empty list, so
    the sign-in can ask every user without checking roles first.
    """
    if not roles.allowed(session.role, "draft.keep"):
        return []
    rows = session.store.rows(
        "SELECT * FROM drafts WHERE user = ? ORDER BY saved_at DESC, form, context", (session.user,)
    )
    return [_draft(r) for r in rows]


def latest(session: Session) -> Draft | None:
    """The signed-in user's most recently saved draft, or None."""
    drafts = mine(session)
    return drafts[0] if drafts else None


def discard(session: Session, form: str, *, context: str = "") -> bool:
    """Throw away the signed-in user's draft (the form was saved, or they chose to discard it).

    Not an event: nothing was recorded, so nothing is corrected. Call it in
    the transaction that saves the form's record, so the record and the end
    of its draft commit together. True when there was a draft.
    """
    session.require("draft.keep", what="keep drafts of forms")
    form, context = _key(form, context)
    with _secure_delete(session.store):
        cur = session.store.execute(
            "DELETE FROM drafts WHERE user = ? AND form = ? AND context = ?", (session.user, form, context)
        )
    return bool(cur.rowcount)


# -- admin ---------------------------------------------------------------------------------


def closing(session: Session, form: str, context: str, save: Callable[[], T]) -> T:
    """Run `save` (a service saving the form) and end the form's draft in the same transaction.

    Either both happen or neither: a saved form never leaves its draft behind to be resumed and
    saved twice, and a refused save keeps the draft.
    """
    session.require("draft.keep", what="keep drafts of forms")
    with session.store.transaction():
        result = save()
        discard(session, form, context=context)
    return result


def listing(session: Session, *, user: str | None = None) -> list[DraftInfo]:
    """Drafts on this laptop without their content: an admin sees everyone's, others their own."""
    if session.role == "admin":
        session.require("draft.manage", what="list other people's drafts")
    else:
        session.require("draft.keep", what="list drafts")
        if user is not None and user != session.user:
            session.require("draft.manage", what="list other people's drafts")
        user = session.user
    sql = (
        "SELECT user, form, context, created_at, saved_at, saves, length(fields) AS size, fields FROM drafts"
    )
    params: tuple[Any, ...] = ()
    if user is not None:
        sql += " WHERE user = ?"
        params = (user,)
    out = []
    for r in session.store.rows(sql + " ORDER BY user, saved_at DESC, form, context", params):
        out.append(
            DraftInfo(
                r["user"],
                r["form"],
                r["context"],
                r["created_at"],
                r["saved_at"],
                r["saves"],
                r["size"],
                len(_fields(r["fields"])),
            )
        )
    return out


def purge(
    session: Session,
    *,
    user: str | None = None,
    older_than: timedelta | None = None,
    everyone: bool = False,
) -> list[Purged]:
    """Delete drafts (an admin): one user's, or everyone's with `everyone`; optionally only old ones.

    Each owner whose drafts go gets one ``draft.purged`` event (owner, count,
    forms, the age limit) in the same transaction as the deletion: the
    trail shows unsaved work was thrown away, by whom and whose, never what
    it said.
    """
    session.require("draft.manage", what="purge drafts")
    if (user is None) == (not everyone):
        raise UsageError("name whose drafts to purge (--user NAME) or purge everyone's (--all)")
    if older_than is not None and older_than < timedelta(0):
        raise UsageError("the age limit (--older-than) must not be negative")
    where, params = [], []
    if user is not None:
        where.append("user = ?")
        params.append(user.strip())
    if older_than is not None:
        where.append("saved_at < ?")
        params.append(iso_utc(now_utc() - older_than))
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    store = session.store
    out: list[Purged] = []
    with store.transaction():
        rows = store.rows(f"SELECT user, form FROM drafts{clause} ORDER BY user, form", tuple(params))
        owners: dict[str, dict[str, int]] = {}
        for r in rows:
            forms = owners.setdefault(r["user"], {})
            forms[r["form"]] = forms.get(r["form"], 0) + 1
        with _secure_delete(store):
            store.execute(f"DELETE FROM drafts{clause}", tuple(params))
        for owner, forms in owners.items():
            body: dict[str, Any] = {"owner": owner, "count": sum(forms.values()), "forms": forms}
            if older_than is not None:
                body["older_than_days"] = round(older_than.total_seconds() / 86400, 3)
            event = session.append(type="draft.purged", subject=f"user:{owner}", body=body).event
            out.append(Purged(owner, body["count"], event))
    return out


# -- internals ---------------------------------------------------------------------------


def _key(form: str, context: str) -> tuple[str, str]:
    if not isinstance(form, str) or not _FORM_RE.fullmatch(form):
        raise UsageError(f"draft form {str(form)[:40]!r} is invalid: 1-64 of a-z, 0-9, '_' and '.'")
    if not isinstance(context, str) or not _CONTEXT_RE.fullmatch(context):
        raise UsageError("draft context must be at most 200 printable characters")
    return form, context


def _check_field(name: Any, value: Any) -> None:
    if not isinstance(name, str) or not _FIELD_RE.fullmatch(name):
        raise UsageError(f"draft field name {str(name)[:40]!r} is invalid: 1-64 printable characters")
    if _SECRET_RE.search(name):
        raise UsageError(f"drafts never keep passwords: leave {name!r} out of the draft")
    _check_value(name, value, 0)


def _check_value(name: str, value: Any, depth: int) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"draft field {name!r} holds {value!r}, which is not a finite number")
        return
    if depth >= MAX_DEPTH:
        raise UsageError(f"draft field {name!r} is nested too deep (at most {MAX_DEPTH} levels)")
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(name, item, depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise UsageError(f"draft field {name!r} holds a mapping with a non-text key")
            _check_value(name, item, depth + 1)
        return
    raise UsageError(
        f"draft field {name!r} holds a {type(value).__name__}; drafts keep text, numbers and yes/no"
    )


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return all(_blank(v) for v in (value.values() if isinstance(value, dict) else value))
    return False


def _fields(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _draft(r: dict[str, Any]) -> Draft:
    proto = {"id": r["protocol_id"], "version": r["protocol_version"]} if r["protocol_id"] else None
    return Draft(
        user=r["user"],
        form=r["form"],
        context=r["context"],
        fields=_fields(r["fields"]),
        focus=r["focus"],
        protocol=proto,
        created_at=r["created_at"],
        saved_at=r["saved_at"],
        saves=r["saves"],
    )


class _secure_delete:
    """Deleted drafts are overwritten with zeros in the database file, not left in free pages."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.before = 0

    def __enter__(self) -> None:
        self.before = int(self.store.scalar("PRAGMA secure_delete") or 0)
        self.store.execute("PRAGMA secure_delete = 1")

    def __exit__(self, *exc: object) -> None:
        self.store.execute(f"PRAGMA secure_delete = {1 if self.before else 0}")


def age(draft: Draft, now: datetime | None = None) -> timedelta:
    """How long ago the draft was last saved."""
    saved = datetime.fromisoformat(draft.saved_at.replace("Z", "+00:00"))
    return (now or now_utc()) - saved
