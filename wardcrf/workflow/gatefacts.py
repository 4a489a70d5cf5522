"""The site's facts behind the protocol's gate kinds, for the engine (`engine.gates.SiteFacts`).

The engine decides which gate applies, when, and in what words; the owners of
the facts keep their rules: consent signatures (`participants.consent_state`),
DSMG decisions (`safety.hold`), the sentinel gate (`participants.sentinel_gate`)
the cold chain's registered dose gates (`dosing.dose_gates`: custody) and randomization's allocation
gates (`dosing.allocation_gates`: a blinded kit must be the participant's).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..engine.gates import SiteFacts
from ..errors import Refused
from ..protocol import Protocol
from ..registration import require_installed
from ..store import Store
from . import dosing, safety
from .base import Participant
from .participants import consent_state, sentinel_gate

ACTION_WORDS = {
    "dose": "record a dose",
    "enroll": "enroll participants",
    "randomize": "randomize participants",
    "record": "record data",
    "signoff": "sign off casebooks",
}
"""What a refusal says cannot be done, per gate action (`engine.gates`); `form:NAME` is "record NAME"."""


def action_words(action: str) -> str:
    """A gate's action as the refusal words it ("dose:REGIMEN" -> "record a dose", "form:labs" -> "record labs")."""
    base, _, rest = action.partition(":")
    if base == "form" and rest:
        return f"record {rest}"
    return ACTION_WORDS.get(base, base or "proceed")


def site_facts(store: Store, proto: Protocol, p: Participant) -> SiteFacts:
    """The answers for participant `p` under `proto` (its consent rules and sentinel count)."""

    def consent(_: Mapping[str, Any]) -> str | None:
        ok, why = consent_state(store, p, proto.consent.witnesses)
        return None if ok else f"{p.id}: {why}"

    def dsmg_hold(ask: Mapping[str, Any]) -> str | None:
        why = safety.hold(store)  # worded as the owner refuses (`safety.require_no_hold`): the action first
        return f"cannot {action_words(str(ask.get('action') or ''))}: {why}" if why else None

    def sentinel(ask: Mapping[str, Any]) -> str | None:
        n = int(ask["gate"].get("participants", proto.sentinel_participants))
        try:  # the owner's rule and words: the first sentinel still without a DSMG "continue"
            sentinel_gate(store, n, p.id)
        except Refused as exc:
            return exc.message
        return None

    def custody(ask: Mapping[str, Any]) -> str | None:
        adm = ask.get("administration") or {}
        kit, start = adm.get("kit"), adm.get("start")
        if not kit or not isinstance(start, datetime) or adm.get("kit_first_use") is False:
            return None  # a course's kit left the chain of custody when it was dispensed to the participant
        product = adm.get("product")
        named = ask["gate"].get("products")
        if named and product is not None and product not in named:
            return None  # the gate names the products under custody; this one is not
        require_installed()
        try:
            for gate in dosing.dose_gates:
                dosing.call_dose_gate(
                    gate, store, str(kit), start, product=str(product) if product else None, participant=p.id
                )
        except Refused as exc:
            return exc.message
        return None

    def allocation(ask: Mapping[str, Any]) -> str | None:
        kit = (ask.get("administration") or {}).get("kit")
        if not kit:
            return None
        require_installed()
        try:
            for gate in dosing.allocation_gates:  # randomization's: a blinded kit must be the one allocated
                gate(store, p.id, str(kit))
        except Refused as exc:
            return exc.message
        return None

    return SiteFacts(
        consent=consent, dsmg_hold=dsmg_hold, sentinel=sentinel, custody=custody, allocation=allocation
    )
