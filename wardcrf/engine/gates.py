"""Gates and dose assessments declared in the protocol, evaluated by the engine (docs/protocol.md,
"[[gates]]", "[[dose_assessments]]").

A gate refuses an action (`record`, `enroll`, `randomize`, `dose`,
`dose:REGIMEN`, `form:NAME`, `signoff`) with the protocol's words, before
anything is saved; a gate before `dose` that refuses now shows on the
worklist as the next dose *held*, with its `hold` text. Gates are evaluated in
declared order, and their holds are joined in that order.

Kinds read from the participant's records through the interpreter:
`require` (`require` must be true, unknown refuses; `refuse_if` refuses when
true; optional `when`, `record`), `eligibility` (the eligibility record's
computed `eligible`/`failed`). Kinds whose facts live in other parts of the
site — `consent` (signatures), `dsmg_hold` (DSMG decisions), `sentinel`,
`custody` (the cold chain), `allocation` (randomization) — are asked of the
`SiteFacts` the calling service supplies from the owners of those facts, so
the engine decides *which* gate applies *when* and *in what words*, and each
owner keeps its own rule.

Dose assessments (`before`/`after` an administration: pre- and post-dose
vital signs, a post-dose check) are what an administration owes:
`owed_after` lists the after-assessments not recorded for the doses given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wardcrf.engine import eligibility, interpreter
from wardcrf.engine.interpreter import EvalError, Rec, Snapshot
from wardcrf.engine.model import Model
from wardcrf.errors import Refused

# The worklist's words for a site-fact gate that declares no `hold` (the refusal itself is the owner's).
DEFAULT_HOLDS = {
    "consent": "consent incomplete",
    "dsmg_hold": "DSMG hold",
    "sentinel": "waiting for the DSMG's review of the sentinel participants",
}

# What a gate of a site-fact kind answers: None (passes) or the refusal's words.
FactCheck = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class SiteFacts:
    """The answers of the parts of the site that own a gate kind's facts (None: that kind passes).

    Each callable gets the gate's declaration, the administration in hand and
    the action the gate stands before (`{"gate": {...}, "administration":
    {...} | None, "action": "dose:REGIMEN" | "enroll" | ...}`) and returns the
    refusal in its owner's words, or None.
    """

    consent: FactCheck | None = None
    dsmg_hold: FactCheck | None = None
    sentinel: FactCheck | None = None
    custody: FactCheck | None = None
    allocation: FactCheck | None = None
    extra: Mapping[str, str] = field(
        default_factory=dict
    )  # names for message holes, e.g. {"participant": id}


@dataclass(frozen=True)
class Refusal:
    code: str
    kind: str
    message: str
    hold: str | None  # the worklist's words when the gate holds the next administration
    record: str | None = None


def applies(gate: Mapping[str, Any], action: str) -> bool:
    """Whether a gate guards `action` (`dose:REGIMEN` is guarded by `dose` gates too)."""
    before = list(gate.get("before", ()))
    base = action.split(":", 1)[0]
    return action in before or (base == "dose" and "dose" in before)


def check(
    model: Model,
    snap: Snapshot,
    action: str,
    facts: SiteFacts,
    *,
    participant: str,
    administration: Mapping[str, Any] | None = None,
) -> list[Refusal]:
    """Every gate before `action` that refuses now, in declared order.

    Without an administration in hand (the worklist asking what holds the
    next dose), gates that read `administration.*` or need its kit (custody,
    allocation) are not decided: they are checked when the dose is recorded.
    """
    if administration is not None:
        snap = Snapshot(**{**snap.__dict__, "administration": administration})
    out: list[Refusal] = []
    for gate in model.data.get("gates", ()):
        if not applies(gate, action):
            continue
        refusal = _one(model, gate, snap, facts, participant, administration, action)
        if refusal is not None:
            out.append(refusal)
    return out


def vitals_owed(model: Model, snap: Snapshot, given: Sequence[int]) -> list[tuple[str, int]]:
    """The post-administration vital signs owed: `owed_after` of the assessments recorded on the form
    `[safety] vital_signs` declares (none when it declares none). What the ward list and the ward queue
    call `post_dose_vitals_due`; the other `after` assessments (a post-dose check) are owed on the
    worklist (`today`) and before the next administration, not here."""
    vital = (model.data.get("safety") or {}).get("vital_signs")
    if not isinstance(vital, Mapping) or not vital.get("form"):
        return []
    return owed_after(model, snap, given, form=str(vital["form"]))


def holds(model: Model, snap: Snapshot, facts: SiteFacts, *, participant: str) -> list[str]:
    """The worklist's words for what holds the participant's next administration now, in declared order."""
    return [r.hold for r in check(model, snap, "dose", facts, participant=participant) if r.hold]


def require(refusals: Sequence[Refusal]) -> None:
    """Refuse with the first gate's message (the order the protocol declares)."""
    if refusals:
        raise Refused(refusals[0].message)


def _reads_administration(gate: Mapping[str, Any]) -> bool:
    return any("administration." in str(gate.get(k, "")) for k in ("when", "require", "refuse_if", "record"))


def _one(
    model: Model,
    gate: Mapping[str, Any],
    snap: Snapshot,
    facts: SiteFacts,
    participant: str,
    administration: Mapping[str, Any] | None,
    action: str = "dose",
) -> Refusal | None:
    code, kind = str(gate["code"]), str(gate.get("kind", "require"))
    if administration is None and (_reads_administration(gate) or kind in ("custody", "allocation")):
        return None
    provided = {"participant": participant, **facts.extra}
    try:
        if gate.get("when") is not None and interpreter.truth(str(gate["when"]), snap) is not True:
            return None
        if kind == "require":
            return _require(gate, snap, provided)
        if kind == "eligibility":
            return _eligibility(model, gate, snap, provided, dosing=administration is not None)
    except EvalError as exc:
        raise Refused(f"{model.id} {model.version}: gate {code}: {exc}") from None
    ask: FactCheck | None = getattr(facts, kind, None)
    if ask is None:
        return None
    said = ask({"gate": gate, "administration": administration, "action": action})
    if said is None:
        return None
    hold = _render(gate.get("hold"), snap, provided) if gate.get("hold") else DEFAULT_HOLDS.get(kind, said)
    return Refusal(code, kind, _render(gate.get("message"), snap, provided) or said, hold)


def _render(template: Any, snap: Snapshot, provided: Mapping[str, str]) -> str:
    return interpreter.render(str(template), snap, provided) if template else ""


def _require(gate: Mapping[str, Any], snap: Snapshot, provided: dict[str, str]) -> Refusal | None:
    code = str(gate["code"])
    blanks: list[str] = []
    if gate.get("refuse_if") is not None:
        if interpreter.truth(str(gate["refuse_if"]), snap) is not True:
            return None
    else:
        ok = interpreter.truth(str(gate["require"]), snap)
        if ok is True:
            return None
        if ok is None:
            blanks = interpreter.blanks_of(str(gate["require"]), snap)
    record = None
    if gate.get("record"):
        found = interpreter.value_of(str(gate["record"]), snap)
        record = found.event_id if isinstance(found, Rec) else None
    words = {**provided, "record": record or ""}
    message = _render(gate.get("message"), snap, words) or f"refused by the protocol's gate {code}"
    if blanks:
        message += f" ({', '.join(blanks)} blank)"
    hold = _render(gate.get("hold"), snap, words) or None
    return Refusal(code, "require", message, hold, record)


def _eligibility(
    model: Model, gate: Mapping[str, Any], snap: Snapshot, provided: dict[str, str], *, dosing: bool = False
) -> Refusal | None:
    """Kind `eligibility`: the eligibility record's computed outcome (the ward recomputes it on amendment)."""
    el = model.data.get("eligibility", {})
    held = snap.records.get(str(el.get("form", "")), ())
    code = str(gate["code"])
    if not held:
        message = f"{provided['participant']} has not been screened; record the {el.get('form')} form first"
        return Refusal(code, "eligibility", message, _render(gate.get("hold"), snap, provided) or None)
    rec = held[-1]
    eligible = rec.values.get(str(el.get("eligible", "")))
    if eligible is None:  # not stored on this record: assessed from the criteria now
        assessed = eligibility.assess(model, snap)
        eligible, failed = assessed.eligible, assessed.failed_codes
    else:
        stored = rec.values.get(str(el.get("failed", ""))) or ()
        failed = list(stored) if isinstance(stored, tuple) else [str(stored)]
    if eligible is True:
        return None
    words = {**provided, "failed": ", ".join(failed), "eligibility_record": rec.event_id}
    message = _render(gate.get("message"), snap, words) or (
        f"{provided['participant']} no longer meets the criteria (failed: {words['failed']}); "
        "no dose is given until the eligibility record is corrected"
        if dosing
        else f"{provided['participant']} is a screen failure (failed: {words['failed']}); "
        "a screen failure is never enrolled"
    )
    return Refusal(code, "eligibility", message, _render(gate.get("hold"), snap, words) or None, rec.event_id)


def owed_after(
    model: Model, snap: Snapshot, given: Sequence[int], *, form: str | None = None
) -> list[tuple[str, int]]:
    """(assessment code, administration number) of every `after` dose assessment not recorded yet (only
    those recorded on `form` when given)."""
    out: list[tuple[str, int]] = []
    for a in model.data.get("dose_assessments", ()):
        if a.get("when") != "after" or (form is not None and a.get("form") != form):
            continue
        link = str(a.get("link", ""))
        done: set[int] = set()
        for rec in snap.records.get(str(a["form"]), ()):
            if a.get("match") and interpreter.record_truth(str(a["match"]), snap, rec) is not True:
                continue
            n = rec.values.get(link)
            if n is not None:
                done.add(int(n))
        out.extend((str(a["code"]), n) for n in sorted(set(given)) if n not in done)
    return out
