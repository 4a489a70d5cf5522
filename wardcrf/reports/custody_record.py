"""A kit's custody record: everything an auditor checks about one kit, from receipt to dose.

The record is the evidence behind `custody.chain` laid out for a reader, at
the ward or at the hub:

- every step (receipt, handovers) with the place, the time in UTC and in the
  site's local time with its zone, and both parties: each party with an
  account by their e-signature (printed name, meaning, time, and whether it
  is still valid), a party without one by name and the photographed sheet;
- every stay with its temperature minimum, maximum and mean kinetic
  temperature and the SHA-256 of each logger file that covers it (each file
  re-hashed now), or how long it was outside a monitored unit;
- every excursion that touched the kit with its disposition (who decided,
  why, when);
- the thaw, its preparation at the pharmacy (steps, the protocol's fields,
  use-by, the pharmacist's e-signature), and the dose record that used the kit;
- every photo with its SHA-256 and a status re-hashed as the record is made
  (intact, MISSING, MISMATCH);
- how each record reached this database: created here, or the sync bundle
  it arrived in (at a hub).

It is computed from the cold chain's own functions (`custody.chain`,
`custody.excursions_for`, `custody.transfer_checks` through the chain, the
logger evidence store, the photo store's re-hash): there is no second
implementation of the chain's rules here, only their presentation. The same
dict is written as JSON (`report audit --kit K --out K.json`) and drawn as
the PDF (`wardcrf.reports.custody_pdf`), so the two always say the same thing.
A lot-level and a shipment-level record list their kits, each kit in full.

Screens can call `kit_record` too (a plain dict, no Textual).

A report, so it lives with the reports: it reads the cold chain, the dataset
(`exports.dataset`) and the report evidence checks (`reports.evidence`), and
the cold chain imports none of them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .. import eventlog, ids, signatures
from ..clock import iso_utc, now_utc, zone
from ..coldchain import config, custody, evidence
from ..errors import Refused
from ..exports.dataset import Dataset
from ..store import Store
from . import evidence as report_evidence

SCHEMA = "wardcrf.custody-record/1"


def local_time(when: int | str | None, zone_name: str) -> str | None:
    """A time as the ward read its clock, with the zone marked: ``2026-03-14 09:05 +08:00 (Asia/Shanghai)``."""
    if when is None:
        return None
    dt = (
        datetime.fromtimestamp(when, UTC)
        if isinstance(when, int)
        else datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    )
    local = dt.astimezone(zone(zone_name))
    return f"{local.strftime('%Y-%m-%d %H:%M')} {local.strftime('%z')[:3]}:{local.strftime('%z')[3:]} ({zone_name})"


def _utc(t: int | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Context:
    """What every part of a record needs: the store, the zone, this site, the photo and bundle lookups."""

    def __init__(self, store: Store) -> None:
        self.store = store
        row = store.one("SELECT site, device, kind, zone FROM site WHERE id = 1")
        if row is None:
            raise Refused("this database has no site identity (not initialised)")
        self.site, self.device, self.kind, self.site_zone = row
        self.zone = config.site_zone(store) or self.site_zone
        self._photos: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] = {}

    def when(self, t: int | None) -> dict[str, str | None]:
        return {"utc": _utc(t), "local": local_time(t, self.zone)}

    def when_iso(self, ts: str | None) -> dict[str, str | None]:
        return {"utc": ts, "local": local_time(ts, self.zone) if ts else None}

    def full_name(self, user: str | None) -> str | None:
        if not user:
            return None
        if user not in self._names:
            row = self.store.one("SELECT full_name FROM users WHERE username = ?", (user,))
            self._names[user] = row[0] if row else user
        return self._names[user]

    def arrival(self, event_id: str) -> dict[str, Any]:
        """How the event reached this database: created here, or in which bundle (sync ledger)."""
        e = eventlog.get(self.store, event_id)
        if e is None:
            return {"event": event_id, "text": "event not held here"}
        out: dict[str, Any] = {
            "event": event_id,
            "device": e.device,
            "seq": e.seq,
            "event_hash": e.hash,
            "text": report_evidence.arrival(self.store, e.device, e.seq, this_device=self.device),
        }
        bundle = (
            self.store.rows(
                "SELECT bundle_seq, manifest_sha, file, applied_at FROM sync_applied"
                " WHERE device = ? AND first_seq <= ? AND last_seq >= ? ORDER BY bundle_seq LIMIT 1",
                (e.device, e.seq, e.seq),
            )
            if e.device != self.device and _has_table(self.store, "sync_applied")
            else []
        )
        if bundle:
            b = bundle[0]
            out["bundle"] = {
                "seq": b["bundle_seq"],
                "manifest_sha256": b["manifest_sha"],
                "file": b["file"],
                "applied_at": b["applied_at"],
            }
        return out

    def photo(self, ref: str, *, step: str, what: str) -> dict[str, Any]:
        """One photo, re-hashed now (once per record, whatever cites it)."""
        sha = ref.lower().removeprefix("sha256:")
        if sha not in self._photos:
            check = report_evidence.check_photo(self.store, sha)
            self._photos[sha] = {
                "sha256": sha,
                "status": check.word,
                "problem": check.problem if check.verified is False else None,
                "checked_at": iso_utc(now_utc()),
                "_thumbnail": check.thumbnail,  # for the PDF only; never in the JSON
            }
        shown = {k: v for k, v in self._photos[sha].items() if not k.startswith("_")}
        return {**shown, "step": step, "what": what}

    def thumbnail(self, sha: str) -> bytes | None:
        entry = self._photos.get(sha)
        return entry["_thumbnail"] if entry else None


def _has_table(store: Store, name: str) -> bool:
    return store.has_table(name)  # either engine's catalogue (a PostgreSQL hub read in place)


def _parties(
    ctx: _Context, t: dict[str, Any], sigs: list[custody.SignatureCheck], photos: list[str]
) -> list[dict[str, Any]]:
    """Both parties of a step: the e-signature of each with an account, the paper sheet for others."""
    out = []
    for side, user, party, location, meaning in (
        ("from", t["from_user"], t["from_party"], t["from_location"], "handed over"),
        ("to", t["to_user"], t["to_party"], t["to_location"], "received"),
    ):
        entry: dict[str, Any] = {"side": side, "party": party, "user": user, "location": location}
        if user:
            mine = [s for s in sigs if s["user"] == user and s["meaning"] == meaning]
            entry["signatures"] = [
                {
                    "name": s["name"],
                    "user": s["user"],
                    "meaning": s["meaning"],
                    "signed": ctx.when_iso(s["signed_at"]),
                    "state": s["state"],
                }
                for s in mine
            ]
            valid = [s for s in mine if s["state"] == "valid"]
            entry["state"] = (
                "signed"
                if valid
                else ("CHANGED SINCE SIGNED" if mine else f"awaiting e-signature ({meaning})")
            )
        else:
            entry["signatures"] = []
            entry["state"] = (
                "no account here: signed the paper sheet photographed with this step"
                if photos
                else "no account here and no photographed sheet"
            )
        out.append(entry)
    return out


def _logger_files(ctx: _Context, unit: str, start: int, end: int) -> list[dict[str, Any]]:
    """The logger files whose readings cover [start, end] in `unit`, each re-hashed now."""
    rows = ctx.store.rows(
        # In the SQL both engines run (a PostgreSQL hub read in place): what DISTINCT orders by is selected, and
        # a reading whose file is not held (no first_t) comes first on both, as SQLite orders NULL.
        "SELECT DISTINCT r.sha256, f.name, f.event_id, f.serial, f.first_t IS NOT NULL AS held, f.first_t"
        " FROM cc_readings r LEFT JOIN cc_logger_files f ON f.sha256 = r.sha256"
        " WHERE r.unit_id = ? AND r.t BETWEEN ? AND ? ORDER BY held, f.first_t, r.sha256",
        (unit, start, end),
    )
    return [
        {
            "sha256": r["sha256"],
            "name": r["name"],
            "serial": r["serial"],
            "import_event": r["event_id"],
            "status": evidence.status(ctx.store, r["sha256"]),
        }
        for r in rows
    ]


def _step(ctx: _Context, link: custody.Link, t: dict[str, Any]) -> dict[str, Any]:
    d = link.detail
    details = json.loads(t["details"])
    photos = [ctx.photo(p["ref"], step=d["event_id"], what=f"{link.kind} sheet") for p in d["photos"]]
    step: dict[str, Any] = {
        "kind": link.kind,
        "event_id": d["event_id"],
        "at": ctx.when(t["at"]),
        "from_location": t["from_location"],
        "to_location": t["to_location"],
        "place": _place(ctx.store, t["to_location"]),
        "condition": t["condition"] or None,
        "parties": _parties(ctx, t, d["signatures"], [p["sha256"] for p in photos]),
        "photos": photos,
        "ok": link.ok,
        "problems": link.problems,
        "arrival": ctx.arrival(d["event_id"]),
    }
    if link.kind == "receipt":
        step["shipment"] = {
            "shipper_id": details.get("shipper_id"),
            "dry_ice_present": details.get("dry_ice_present"),
            "container_intact": details.get("container_intact"),
            "product_frozen": details.get("product_frozen"),
            "logger_serial": details.get("logger_serial"),
        }
        logger = details.get("logger")
        if logger:
            step["transit_logger"] = {
                "sha256": logger["sha256"],
                "name": logger.get("name"),
                "status": evidence.status(ctx.store, logger["sha256"]),
                "readings": logger.get("readings"),
                "first": logger.get("first"),
                "last": logger.get("last"),
                "min_c": logger.get("min_c"),
                "max_c": logger.get("max_c"),
                "mkt_c": logger.get("mkt_c"),
            }
    return step


def _place(store: Store, location: str) -> str:
    """A location as people say it: a unit by its name and where it stands."""
    row = store.one("SELECT name, location, low_c, high_c FROM cc_units WHERE unit_id = ?", (location,))
    if row is None:
        return location
    return f"{location}: {row[0]}, {row[1]} ({row[2]:g} to {row[3]:g} °C)"


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _stay(ctx: _Context, link: custody.Link) -> dict[str, Any]:
    d = link.detail
    start, end = _epoch(d["start"]), _epoch(d["end"])
    stay: dict[str, Any] = {
        "location": d["location"],
        "place": _place(ctx.store, d["location"]),
        "start": ctx.when(start),
        "end": ctx.when(end),
        "minutes": (end - start) // 60,
        "monitored_unit": custody.is_unit(ctx.store, d["location"]),
        "temperatures": d.get("temperatures"),
        "logger_files": [],
        "ok": link.ok,
        "problems": link.problems,
    }
    if stay["monitored_unit"]:
        stay["logger_files"] = _logger_files(ctx, d["location"], start, end)
        stay["manual_readings"] = int(
            ctx.store.scalar(
                "SELECT count(*) FROM cc_manual_readings WHERE unit_id = ? AND at BETWEEN ? AND ?",
                (d["location"], start, end),
            )
            or 0
        )
    return stay


def _excursions(ctx: _Context, kit: str) -> list[dict[str, Any]]:
    out = []
    for x in custody.excursions_for(ctx.store, kit):
        d = x["disposition"]
        disposition = None
        if d is not None:
            e = eventlog.get(ctx.store, d["event_id"])
            disposition = {
                "decision": d["decision"],
                "reason": d["reason"],
                "by": d["by_user"],
                "by_name": ctx.full_name(d["by_user"]),
                "at": ctx.when_iso(e.ts if e else None),
                "event_id": d["event_id"],
                "arrival": ctx.arrival(d["event_id"]),
            }
        out.append(
            {
                "id": x["excursion_id"],
                "scope": x["scope"],
                "kind": x["kind"],
                "unit": x["unit_id"],
                "receipt": x["receipt_event"],
                "start": ctx.when(x["start_t"]),
                "end": ctx.when(x["end_t"]),
                "minutes": (x["end_t"] - x["start_t"]) // 60,
                "min_c": x["min_c"],
                "max_c": x["max_c"],
                "open": bool(x["is_open"]),
                "detail": x["detail"],
                "disposition": disposition,
                "state": "awaiting a disposition" if d is None else d["decision"],
            }
        )
    return out


def _thaws(ctx: _Context, kit: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": th["event_id"],
            "start": ctx.when(th["start_t"]),
            "end": ctx.when(th["end_t"]),
            "minutes": (th["end_t"] - th["start_t"]) // 60,
            "by": th["by_user"],
            "by_name": ctx.full_name(th["by_user"]),
            "reconstitution": th["reconstitution"] or None,
            "arrival": ctx.arrival(th["event_id"]),
        }
        for th in ctx.store.rows("SELECT * FROM cc_thaws WHERE kit_id = ? ORDER BY start_t", (kit,))
    ]


def _preparations(ctx: _Context, kit: str) -> list[dict[str, Any]]:
    out = []
    for pr in ctx.store.rows("SELECT * FROM cc_preparations WHERE kit_id = ? ORDER BY start_t", (kit,)):
        sigs = signatures.for_target(ctx.store, pr["event_id"])
        out.append(
            {
                "event_id": pr["event_id"],
                "product": pr["product"],
                "steps": json.loads(pr["steps"]),
                "start": ctx.when(pr["start_t"]),
                "end": ctx.when(pr["end_t"]),
                "use_by": ctx.when(pr["use_by_t"]) if pr["use_by_t"] is not None else None,
                "values": json.loads(pr["field_values"]),
                "by": pr["by_user"],
                "by_name": ctx.full_name(pr["by_user"]),
                "signed": [s.manifestation() for s in sigs],
                "arrival": ctx.arrival(pr["event_id"]),
            }
        )
    return out


def _use(ctx: _Context, kit: str) -> dict[str, Any] | None:
    event_id = custody.used_by(ctx.store, kit)
    if event_id is None:
        return None
    row = ctx.store.one(
        "SELECT subject, data, created_by, created_at FROM records WHERE event_id = ?", (event_id,)
    )
    if row is None:
        return None
    data = json.loads(row[1])
    return {
        "event_id": event_id,
        "participant": (row[0] or "").removeprefix("participant:"),
        "dose_number": data.get("dose_number"),
        "start": ctx.when_iso(data.get("start")) if data.get("start") else None,
        "by": row[2],
        "by_name": ctx.full_name(row[2]),
        "entered": ctx.when_iso(row[3]),
        "arrival": ctx.arrival(event_id),
    }


def _trail(ctx: _Context, kit: str, event_ids: list[str]) -> list[dict[str, Any]]:
    """Every event of the kit's records: submissions, amendments (with reasons) and signatures, in log order."""
    if not event_ids:
        return []
    marks = ",".join("?" for _ in event_ids)
    rows = ctx.store.rows(
        f"SELECT id FROM events WHERE id IN ({marks}) OR amends IN ({marks})"
        f" OR (type = 'signature.applied' AND {ctx.store.json_text('line', 'body', 'target')} IN ({marks}))"
        " ORDER BY pos",
        (*event_ids, *event_ids, *event_ids),
    )
    out = []
    for r in rows:
        e = eventlog.get(ctx.store, r["id"])
        if e is None:
            continue
        b = e.body
        if e.type == "record.amended":
            what = "amended " + ", ".join(
                f"{f}: {json.dumps(c.get('old'), ensure_ascii=False)} -> {json.dumps(c.get('new'), ensure_ascii=False)}"
                for f, c in sorted((b.get("changes") or {}).items())
            )
        elif e.type == "signature.applied":
            what = f"signed {b.get('target')} as {b.get('meaning')} ({b.get('full_name')})"
        else:
            what = f"recorded {b.get('form') or e.type}"
        out.append(
            {
                "event_id": e.id,
                "type": e.type,
                "at": ctx.when_iso(e.ts),
                "user": e.user,
                "role": e.role,
                "what": what,
                "reason": e.reason,
                "event_hash": e.hash,
            }
        )
    return out


def kit_record(store: Store, kit: str, *, ctx: _Context | None = None) -> dict[str, Any]:
    """The custody record of one kit (a plain dict, the JSON's content)."""
    ctx = ctx or _Context(store)
    chain = custody.chain(store, kit)
    transfers = {r["event_id"]: r for r in custody.steps(store, kit)}
    steps, stays = [], []
    for link in chain.links:
        if link.kind in ("receipt", "handover"):
            steps.append(_step(ctx, link, transfers[link.detail["event_id"]]))
        elif link.kind == "stay":
            stays.append(_stay(ctx, link))
    lot = None
    if chain.lot:
        row = store.rows(
            "SELECT lot, product, expiry, release_ref, quantity, event_id FROM cc_lots WHERE lot = ?",
            (chain.lot,),
        )
        lot = row[0] if row else {"lot": chain.lot}
    thaws = _thaws(ctx, kit)
    prepared = _preparations(ctx, kit)
    excursions = _excursions(ctx, kit)
    use = _use(ctx, kit)
    dispositions = [x["disposition"]["event_id"] for x in excursions if x["disposition"]]
    record_events = [s["event_id"] for s in steps] + [t["event_id"] for t in thaws] + dispositions
    record_events += [p["event_id"] for p in prepared]
    record_events += [use["event_id"]] if use else []
    # every other record that names the kit (one query owns that)
    record_events += [
        r.event_id for r in Dataset(store).records_naming_kit(kit) if r.event_id not in record_events
    ]
    photos = [p for s in steps for p in s["photos"]]
    return {
        "kit": kit,
        "lot": lot,
        "complete": chain.complete,
        "problems": chain.problems,
        "state": _state(chain, excursions, use),
        "steps": steps,
        "stays": stays,
        "excursions": excursions,
        "thaws": thaws,
        "preparations": prepared,
        "dose": use,
        "photos": photos,
        "photos_not_intact": [p["sha256"] for p in photos if p["status"] != "intact"],
        "audit_trail": _trail(ctx, kit, record_events),
        # derived images for the PDF only (as_json leaves out every key starting with "_")
        "_thumbnails": {p["sha256"]: ctx.thumbnail(p["sha256"]) for p in photos},
    }


def _state(chain: custody.Chain, excursions: list[dict[str, Any]], use: dict[str, Any] | None) -> str:
    if any(x["state"] == "discard" for x in excursions):
        return "discarded"
    if use:
        return "used"
    if any(x["disposition"] is None for x in excursions):
        return "quarantined"
    return "complete chain" if chain.complete else "chain incomplete"


def _header(ctx: _Context, kind: str, key: str, printed_by: str) -> dict[str, Any]:
    now = now_utc()
    return {
        "schema": SCHEMA,
        "record": kind,
        "key": key,
        "site": ctx.site,
        "source": ctx.kind,
        "device": ctx.device,
        "zone": ctx.zone,
        "generated": {"utc": iso_utc(now), "local": local_time(iso_utc(now), ctx.zone), "by": printed_by},
    }


def _known_kits(store: Store) -> set[str]:
    return {r[0] for r in store.execute("SELECT kit_id FROM cc_kits")}


def build(
    store: Store,
    *,
    printed_by: str,
    kit: str | None = None,
    lot: str | None = None,
    shipment: str | None = None,
) -> dict[str, Any]:
    """The custody record of a kit, of every kit of a lot, or of every kit of a shipment.

    A shipment is named by its shipper id (every receipt that carried it) or
    by the receipt's event id. Raises `Refused` for an unknown kit, lot or
    shipment (nothing is written).
    """
    ctx = _Context(store)
    if kit is not None:
        key = ids.key(kit)  # as typed or scanned: one kit whatever the case
        named = store.one("SELECT 1 FROM cc_kits WHERE kit_id = ?", (key,)) or custody.used_by(store, key)
        if named is None:
            raise Refused(f"unknown kit {kit} (no custody events and no dose records name it here)")
        return {**_header(ctx, "kit", key, printed_by), **kit_record(store, key, ctx=ctx)}
    if lot is not None:
        key = ids.key(lot)
        row = store.rows(
            "SELECT lot, product, expiry, release_ref, quantity, event_id FROM cc_lots WHERE lot = ?", (key,)
        )
        if not row:
            raise Refused(f"unknown lot {lot} (see `wardcrf coldchain status`)")
        kits = [
            r[0] for r in store.execute("SELECT kit_id FROM cc_kits WHERE lot = ? ORDER BY kit_id", (key,))
        ]
        return {**_header(ctx, "lot", key, printed_by), "lot": row[0], **_kits(store, ctx, kits)}
    if shipment is not None:
        key = shipment.strip()
        receipts = store.rows(
            "SELECT event_id, kits, details, at FROM cc_transfers WHERE kind = 'receipt'"
            f" AND (event_id = ? OR {store.json_text('details', 'shipper_id')} = ?) ORDER BY at, event_id",
            (key, ids.key(key)),
        )
        if not receipts:
            raise Refused(f"unknown shipment {shipment} (give the shipper id or the receipt's event id)")
        kits = sorted({k for r in receipts for k in json.loads(r["kits"])})
        return {
            **_header(ctx, "shipment", key, printed_by),
            "receipts": [
                {
                    "event_id": r["event_id"],
                    "shipper_id": json.loads(r["details"]).get("shipper_id"),
                    "at": ctx.when(r["at"]),
                    "kits": json.loads(r["kits"]),
                }
                for r in receipts
            ],
            **_kits(store, ctx, kits),
        }
    raise Refused("name a kit, a lot or a shipment")


def _kits(store: Store, ctx: _Context, kits: list[str]) -> dict[str, Any]:
    records = [kit_record(store, k, ctx=ctx) for k in kits]
    known = _known_kits(store)
    return {
        "kits": [
            {
                "kit": r["kit"],
                "state": r["state"],
                "complete": r["complete"],
                "registered": r["kit"] in known,
                "photos_not_intact": r["photos_not_intact"],
                "dose": {"participant": r["dose"]["participant"], "dose_number": r["dose"]["dose_number"]}
                if r["dose"]
                else None,
            }
            for r in records
        ],
        "kit_records": records,
    }


def as_json(record: dict[str, Any]) -> str:
    """The record as JSON text (thumbnails are the PDF's only addition, never here)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not k.startswith("_")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(record), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
