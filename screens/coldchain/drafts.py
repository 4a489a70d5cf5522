"""The cold-chain screens that keep drafts, and how each reopens one (`draft_openers`).

Called once by the drafts screen (`drafts_screen.DRAFT_OPENERS`): a receipt, a
handover, a thaw, a preparation at the pharmacy or a new unit is reopened on its transfer screen, a manual
temperature reading on the readings screen of its unit.
"""

from __future__ import annotations

from collections.abc import Callable

from wardcrf import drafts
from wardcrf.coldchain import services

from ..draft_openers import DraftOpeners, unit_of
from ..ward import Ward
from .handover import HandoverScreen
from .preparation import PreparationScreen
from .readings import ReadingsScreen
from .receipt import ReceiptScreen
from .thaw import ThawScreen
from .transfer import TransferScreen
from .unit import UnitScreen

TRANSFER_SCREENS: dict[str, tuple[type[TransferScreen], str]] = {
    "coldchain.receipt": (ReceiptScreen, "cc.receipt"),
    "coldchain.handover": (HandoverScreen, "cc.handover"),
    "coldchain.thaw": (ThawScreen, "cc.thaw"),
    "coldchain.preparation": (PreparationScreen, "cc.preparation"),
    "coldchain.unit_add": (UnitScreen, "cc.unit_add"),
}
"""A cold-chain draft's form -> (its screen, the title's message id)."""


def register_drafts(openers: DraftOpeners) -> None:
    for form, (screen, title) in TRANSFER_SCREENS.items():
        openers.add(form, title=title, open=_transfer(screen))
    openers.add(services.FORM_READING, title="cc.readings", open=_reading)


def _transfer(screen: type[TransferScreen]) -> Callable[[Ward, drafts.Draft], TransferScreen]:
    def open_draft(ward: Ward, draft: drafts.Draft) -> TransferScreen:
        return screen(ward, initial=draft.fields, focus=draft.focus)

    return open_draft


def _reading(ward: Ward, draft: drafts.Draft) -> ReadingsScreen:
    """A manual reading's draft is kept per unit (``unit:<id>``, `ReadingsScreen.draft_key`)."""
    return ReadingsScreen(ward, unit_of(draft), initial=draft.fields, focus=draft.focus)
