"""The custody record of a kit, a lot or a shipment, drawn as PDF pages.

Draws exactly the dict `wardcrf.reports.custody_record.build` returns (the
JSON copy is the same dict), in the order an auditor follows the kit:
steps from receipt to dose with both parties' e-signatures, each stay's
temperatures and logger files, excursions with their dispositions, the
thaw, the dose; then the records' audit trail. Every state an auditor looks
for (a photo that does not re-hash, a signature changed since signing, a
stay not monitored) is a red badge; the calm states are grey text.
"""

from __future__ import annotations

from typing import Any

from .pdf import Document


def _when(w: dict[str, Any] | None) -> str:
    if not w or not w.get("utc"):
        return "-"
    return f"{w['local']} = {w['utc']} UTC"


def _short(w: dict[str, Any] | None) -> str:
    return (w or {}).get("local") or "-"


class CustodyPages:
    """Draws custody records into a `Document`; counts what it drew (photos, signatures)."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.photos = 0
        self.signatures = 0

    # -- whole records ----------------------------------------------------------------------

    def record(self, rec: dict[str, Any]) -> None:
        """A kit, lot or shipment record as returned by `custody_record.build`."""
        d = self.doc
        kind = rec["record"]
        d.add_page()
        d.heading(f"Custody record of {kind} {rec['key']}", 16)
        g = rec["generated"]
        d.line(
            f"{'Hub' if rec['source'] == 'hub' else 'Ward'} {rec['site']} - made {g['local']} ({g['utc']} UTC) "
            f"by {g['by']}. Times are the ward's local time with its zone ({rec['zone']}), then UTC. Photo "
            "and logger-file statuses were re-hashed as this record was made.",
            8.5,
        )
        if kind == "kit":
            self.kit(rec, first=True)
            return
        if kind == "lot":
            lot = rec["lot"]
            d.line(
                f"Lot {lot['lot']}: {lot['product']}, expiry {lot['expiry']}, release {lot['release_ref']}, "
                f"{lot['quantity']} kit(s) registered.",
                9,
            )
        else:
            for r in rec["receipts"]:
                d.line(
                    f"Receipt {r['event_id']} from shipper {r['shipper_id']} at {_when(r['at'])}: "
                    f"{len(r['kits'])} kit(s)",
                    9,
                )
        d.heading("Kits", 11)
        for k in rec["kits"]:
            bad = k["state"] in ("chain incomplete", "quarantined", "discarded") or k["photos_not_intact"]
            use = k.get("dose")
            text = (
                f"{k['kit']}: {k['state']}"
                + (f" (participant {use['participant']}, dose {use['dose_number']})" if use else "")
                + (f"; photo(s) not intact: {len(k['photos_not_intact'])}" if k["photos_not_intact"] else "")
            )
            d.badge(text, alert=bool(bad))
        for kr in rec["kit_records"]:
            d.add_page()
            d.heading(f"Kit {kr['kit']}", 14)
            self.kit(kr, first=False)

    def kit(self, rec: dict[str, Any], *, first: bool) -> None:
        d = self.doc
        lot = rec.get("lot") or {}
        if lot:
            d.line(
                f"Lot {lot.get('lot')}: {lot.get('product', '?')}, expiry {lot.get('expiry', '?')}, "
                f"release {lot.get('release_ref', '?')}",
                9,
            )
        else:
            d.line("Not registered in any lot on this site.", 9)
        d.badge(
            f"State: {rec['state']}" + ("" if rec["complete"] else " - CHAIN INCOMPLETE"),
            alert=not rec["complete"],
        )
        for p in rec["problems"]:
            d.badge(p, alert=True)
        self.steps(rec)
        self.stays(rec)
        self.excursions(rec)
        self.thaws(rec)
        self.preparations(rec)
        self.dose(rec)
        self.trail(rec)

    # -- parts ------------------------------------------------------------------------------

    def steps(self, rec: dict[str, Any]) -> None:
        d = self.doc
        d.heading("Custody steps, receipt to dose", 12)
        if not rec["steps"]:
            d.badge("No receipt or handover recorded for this kit.", alert=True)
        thumbs = rec.get("_thumbnails") or {}
        for i, s in enumerate(rec["steps"], start=1):
            d.heading(f"{i}. {s['kind'].capitalize()} {s['event_id']} - {_short(s['at'])}", 10)
            d.line(f"When: {_when(s['at'])}", 8.5)
            d.line(f"From {s['from_location']} to {s['place']}", 8.5)
            if s.get("shipment"):
                sh = s["shipment"]
                d.line(
                    f"Shipper {sh['shipper_id']}: dry ice {'yes' if sh['dry_ice_present'] else 'NO'}, "
                    f"container {'intact' if sh['container_intact'] else 'DAMAGED'}, product "
                    f"{'frozen' if sh['product_frozen'] else 'NOT FROZEN'}; logger {sh['logger_serial'] or '-'}",
                    8.5,
                )
            if s.get("transit_logger"):
                tl = s["transit_logger"]
                d.line(
                    f"Transit logger file {tl['name']}: {tl['readings']} readings, {tl['min_c']} to "
                    f"{tl['max_c']} °C, MKT {tl['mkt_c']} °C",
                    8.5,
                )
                d.line(f"    SHA-256 {tl['sha256']}", 8)
                d.badge(f"logger file {tl['status']}", alert=tl["status"] != "ok")
            if s["condition"]:
                d.line(f"Condition: {s['condition']}", 8.5)
            for p in s["parties"]:
                label = "Handed over by" if p["side"] == "from" else "Received by"
                d.line(f"{label}: {p['party']} at {p['location']}", 8.5)
                for sg in p["signatures"]:
                    self.signatures += 1
                    d.line(
                        f"    E-signature: {sg['name']} ({sg['user']}) - meaning: {sg['meaning']} - "
                        f"{_when(sg['signed'])}",
                        8.5,
                    )
                d.badge(
                    f"    {p['state']}",
                    alert=p["state"] not in ("signed",)
                    and not p["state"].startswith("no account here: signed"),
                )
            for ph in s["photos"]:
                self.photo(ph, thumbs.get(ph["sha256"]))
            for prob in s["problems"]:
                d.badge(prob, alert=True)
            d.line(f"Reached this database: {s['arrival']['text']}", 8)

    def photo(self, ph: dict[str, Any], thumb: bytes | None) -> None:
        d = self.doc
        self.photos += 1
        d.line(f"Photo ({ph['what']}):", 8.5)
        d.line(f"    SHA-256 {ph['sha256']}", 8.5)
        if ph["status"] == "intact":
            d.badge("intact: the stored original re-hashes to this SHA-256", alert=False)
        else:
            d.badge(f"{ph['status']}: {ph['problem'] or ''}", alert=True)
        if thumb:
            d.image(thumb)

    def stays(self, rec: dict[str, Any]) -> None:
        d = self.doc
        d.heading("Stays and temperatures", 12)
        if not rec["stays"]:
            d.line("No stay recorded.", 8.5)
        for st in rec["stays"]:
            d.line(f"{st['place']}: {_short(st['start'])} to {_short(st['end'])} ({st['minutes']} min)", 9)
            t = st.get("temperatures")
            if t:
                d.line(
                    f"    {t['readings']} logger readings: min {t['min_c']} °C, max {t['max_c']} °C, "
                    f"mean kinetic temperature {t['mkt_c']} °C",
                    8.5,
                )
            elif st["monitored_unit"]:
                d.line("    no logger readings for this stay", 8.5)
            else:
                d.line("    outside a monitored unit (time allowance applies)", 8.5)
            for f in st["logger_files"]:
                d.line(f"    logger file {f['name']} (import {f['import_event']})", 8)
                d.line(f"    SHA-256 {f['sha256']}", 8)
                d.badge(f"    logger file {f['status']}", alert=f["status"] != "ok")
            if st.get("manual_readings"):
                d.line(f"    {st['manual_readings']} manual reading(s)", 8.5)
            for prob in st["problems"]:
                d.badge(prob, alert=True)

    def excursions(self, rec: dict[str, Any]) -> None:
        d = self.doc
        d.heading("Excursions and dispositions", 12)
        if not rec["excursions"]:
            d.line("No excursion touched this kit.", 8.5)
        for x in rec["excursions"]:
            where = x["unit"] or f"receipt {x['receipt']}"
            rng = f", {x['min_c']} to {x['max_c']} °C" if x["min_c"] is not None else ""
            d.line(
                f"{x['id']} ({where}): {_short(x['start'])} to {_short(x['end'])}, {x['minutes']} min{rng}"
                + (f" - {x['detail']}" if x["detail"] else ""),
                8.5,
            )
            disp = x["disposition"]
            if disp is None:
                d.badge("AWAITING A DISPOSITION: the kit is quarantined", alert=True)
            else:
                d.line(
                    f"    {disp['decision']} by {disp['by_name']} ({disp['by']}) at {_when(disp['at'])}: "
                    f"{disp['reason']} (event {disp['event_id']})",
                    8.5,
                )
                d.badge(f"    disposition: {disp['decision']}", alert=disp["decision"] == "discard")

    def thaws(self, rec: dict[str, Any]) -> None:
        d = self.doc
        d.heading("Thaw and reconstitution", 12)
        if not rec["thaws"]:
            d.line("Not thawed.", 8.5)
        for th in rec["thaws"]:
            d.line(
                f"Thawed by {th['by_name']} ({th['by']}) from {_short(th['start'])} to {_short(th['end'])} "
                f"({th['minutes']} min)"
                + (f"; {th['reconstitution']}" if th["reconstitution"] else "")
                + f" - event {th['event_id']}",
                8.5,
            )

    def preparations(self, rec: dict[str, Any]) -> None:
        """A kit prepared at the pharmacy (a step the protocol does there); nothing drawn when none was."""
        if not rec.get("preparations"):
            return
        d = self.doc
        d.heading("Preparation at the pharmacy", 12)
        for pr in rec["preparations"]:
            shown = ", ".join(
                f"{k} {v['value']} {v['unit']}" if isinstance(v, dict) else f"{k} {v}"
                for k, v in pr["values"].items()
            )
            d.line(
                f"{pr['product']} ({', '.join(pr['steps'])}) prepared by {pr['by_name']} ({pr['by']}) from "
                f"{_short(pr['start'])} to {_short(pr['end'])}"
                + (f"; {shown}" if shown else "")
                + (f"; use by {_short(pr['use_by'])}" if pr["use_by"] else "")
                + f" - event {pr['event_id']}",
                8.5,
            )
            for s in pr["signed"]:
                d.line(f"    signed: {s}", 8)

    def dose(self, rec: dict[str, Any]) -> None:
        d = self.doc
        d.heading("Dose", 12)
        use = rec["dose"]
        if use is None:
            d.line("No dose record uses this kit.", 8.5)
            return
        d.line(
            f"Used for participant {use['participant']}, dose {use['dose_number']} at "
            f"{_when(use['start'])}, recorded by {use['by_name']} ({use['by']}) - record {use['event_id']}",
            8.5,
        )
        d.line(f"Reached this database: {use['arrival']['text']}", 8)

    def trail(self, rec: dict[str, Any]) -> None:
        d = self.doc
        d.heading("Audit trail of these records", 12)
        if not rec["audit_trail"]:
            d.line("No record of this kit on this site.", 8.5)
        for e in rec["audit_trail"]:
            reason = f"; reason: {e['reason']}" if e["reason"] else ""
            d.line(
                f"{_short(e['at'])} {e['user'] or '-'} ({e['role'] or '-'}): {e['what']}{reason} - {e['event_id']}"[
                    :900
                ],
                8,
                h=4,
            )
