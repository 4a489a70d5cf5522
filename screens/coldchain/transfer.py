"""A custody form (receipt, handover, thaw, storage unit): the form framework's fields, the parties' signatures.

A transfer screen is a `FieldForm` (screens/field_form.py) like every record
form: its `FIELDS` are `FieldSpec`s laid out by a `FieldGroup` (ids
``cc-<name>``), with the kinds a custody step needs — scanned kit lists
(each scan checked against the site's kit id rule, `kits`), photo lists
(`photos`, F4 to browse), a file (`path`), yes/no (`boolean`) — and the
checks the screen makes itself (`FieldSpec.check`: a whole number of kits, a
temperature), marked on their fields before anyone signs.

A custody step is signed by each party who has an account ("handed over" /
"received"); a party without one is named and the photographed sheet they
signed is attached (`@path`, or `F4` to browse). On save (`ctrl+s`) every
rule is checked first (`rehearse`: the service run without saving), then each
in-system party signs in the signature dialog in their own name with their
own password (checked at once: a wrong password keeps the dialog); with
"other party signs later" only the signed-in user signs now and the step
waits on the cold-chain home for the other party (`s` there). Then the
service runs in a worker; a refusal is shown as the service words it and
nothing typed is lost (values survive a language switch and a lock too).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from wardcrf import ids, protocol, scanner
from wardcrf.coldchain import services

from ..field_form import FieldForm, Signers
from ..i18n import t
from ..keys import LANGUAGE
from ..ward import Ward
from ..widgets.fields import FieldGroup, FieldSpec

MAX_LABEL = 24
"""The custody forms' label column, at most (they are laid out for 80 columns with no unit column)."""

SIGNING_HOOKS = ("parties", "what", "submit")
"""What every transfer screen says itself: who signs, what they sign, how it is saved."""


class TransferScreen(FieldForm):
    """Base of the receipt, handover, thaw and unit screens (subclasses set FIELDS, TITLE_ID and
    the signing hooks).

    A subclass that forgets a signing hook fails when its class statement runs
    (`__init_subclass__`), not when a pharmacist first opens it.
    """

    CSS_PATH = "transfer.tcss"  # beside this module (every custody form lives in coldchain/)
    AUTO_FOCUS = "#cc-form Input"
    BODY_ID = "cc-form"
    MESSAGE_ID = "cc-form-message"
    SIGNATURE_CHECKED_AT_ONCE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("f4", "browse", "key.cc_browse"),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
    ]
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    TITLE_ID = ""

    def __init__(
        self, ward: Ward, initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        super().__init__(ward, initial, focus=focus)
        self.values = {**self.defaults(), **self.values}
        self.kit_rule = ward.call(protocol.id_rule_for, ids.KIT)
        """The site's kit id rule (the protocol's format, if it declares one): each scan is checked at once."""
        self.scan_gap_s = ward.call(scanner.profile).gap_s
        """This laptop's scanner profile: the quiet gap that ends a scan in the list fields (None: Enter)."""
        self.submission: dict[str, Any] | None = None
        """What the save running now saves, read as it started (the service runs in a thread)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [h for h in SIGNING_HOOKS if getattr(cls, h) is getattr(TransferScreen, h)]
        if missing:
            raise TypeError(f"{cls.__name__} does not define the signing hooks {', '.join(missing)}")

    def defaults(self) -> dict[str, Any]:
        return {}

    # -- the form ----------------------------------------------------------------------
    def form_fields(self) -> list[FieldSpec]:
        return list(self.FIELDS)

    def form_title(self) -> str:
        return t(self.TITLE_ID)

    def help_text(self) -> str:
        return t(self.TITLE_ID + "_help")

    def compose_fields(self) -> ComposeResult:
        yield FieldGroup(
            specs=tuple(self.form_fields()),
            zone=self.ward.session.ctx.zone,
            user=self.ward.user,
            values=self.values,
            problems=self.problems,
            stem="cc",
            units=False,
            max_label=MAX_LABEL,
            kit_rule=self.kit_rule,
            scan_gap_s=self.scan_gap_s,
            id="cc-fields",
        )

    @property
    def group(self) -> FieldGroup:
        return self.query_one("#cc-fields", FieldGroup)

    def draft_key(self) -> tuple[str, str] | None:
        # "cc.receipt" -> "coldchain.receipt": the draft's form name
        return "coldchain." + self.TITLE_ID.removeprefix("cc."), ""

    # -- what is saved: as typed when ctrl+s was pressed ---------------------------------
    def freeze(self) -> None:
        self.submission = {k: list(v) if isinstance(v, list) else v for k, v in self.values.items()}

    def _saving_values(self) -> dict[str, Any]:
        """While a save runs, what it saves (`freeze`); else what is typed."""
        return self.submission if self.saving and self.submission is not None else self.values

    def text(self, name: str) -> str:
        return str(self._saving_values().get(name) or "").strip()

    def flag(self, name: str) -> bool:
        return self._saving_values().get(name) in (True, "yes")

    def items(self, name: str) -> list[str]:
        """A list field's entries (kits, photos)."""
        return list(self._saving_values().get(name) or [])

    def set_value(self, name: str, value: str) -> None:
        self.values[name] = value
        if self.is_mounted:
            self.group.set_value(name, value)

    # -- the framework's signing hooks, from each custody step's own -------------------
    def signers(self) -> Signers:
        parties = self.parties()
        if self.flag("sign_later"):
            parties = [(u, m) for u, m in parties if u == self.ward.user]
        return parties

    def signing_what(self) -> str:
        return self.what()

    def record(self, passwords: dict[str, str], reason: str | None) -> services.Recorded:
        return self.submit(passwords)  # custody services have no problem to confirm with a reason

    @abstractmethod
    def parties(self) -> list[tuple[str, str]]:
        """(user, meaning) of every in-system party who signs now (every subclass says it)."""

    @abstractmethod
    def what(self) -> str:
        """What is being signed, in the e-signature dialog's words (every subclass says it)."""

    @abstractmethod
    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        """Call the service (in a worker thread; every subclass says which)."""

    def rehearse(self) -> services.Recorded | None:
        """Every rule checked before anyone signs (in a worker thread): the service run
        without signatures and rolled back (`services.preflight`). None: nothing to sign."""
        return None

    def saved(self, result: Any) -> None:
        rec: services.Recorded = result
        lines = [t("cc.saved", what=t(self.TITLE_ID), event=rec.event.id)]
        lines += [t("cc.warning", text=w) for w in rec.warnings]
        lines += [t("cc.awaiting_signature", who=p) for p in rec.pending_signatures]
        self.app.notify(
            "\n".join(lines), severity="warning" if rec.warnings or rec.pending_signatures else "information"
        )
        self.dismiss(rec)
