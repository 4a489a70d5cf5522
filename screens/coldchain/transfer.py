"""What a receipt and a handover screen have in common: fields, photos, both signatures.

A custody step is signed by each party who has an account ("handed over" /
"received"); a party without one is named and the photographed sheet they
signed is attached (`@path`, or `F4` to browse). On save (`ctrl+s`) each
in-system party signs in the signature dialog in their own name with their
own password (a wrong password keeps the dialog); with "other party signs
later" only the signed-in user signs now and the step waits on the
cold-chain home for the other party (`s` there). Then the service runs in
a worker; a refusal is shown as the service words it and nothing typed is
lost (values survive a language switch and a lock too).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, Static

from wardcrf import ids, protocol, scanner
from wardcrf.coldchain import services
from wardcrf.errors import Refused, WardError

from ..dialogs.path import PathDialog
from ..errors import message_of
from ..i18n import label_width, pad, t
from ..unsaved import UnsavedWork, closing_draft, without_blanks
from ..ward import Ward
from ..widgets.entry_list import EntryList
from ..widgets.footer import WardFooter
from ..widgets.status import StatusBar
from ..widgets.typeahead import WardInput, WardSelect, focus_now
from .shared import collect_passwords

MAX_LABEL = 24


@dataclass(frozen=True)
class FieldSpec:
    """One row of a custody form: `kind` is text, yesno, kits, photos or path."""

    name: str
    label: str  # message id
    kind: str = "text"
    hint: str = ""


def kit_id(raw: str) -> str:
    return ids.normalise(ids.KIT, raw)


def kit_scanner(rule: ids.Rule) -> Callable[[str, list[str]], list[str]]:
    """A kit list's check of one scanner burst under the site's kit id rule (refused: `Refused`)."""

    def scan(raw: str, listed: list[str]) -> list[str]:
        got = ids.scan(raw, rule, like=listed)
        if not got.ok:
            raise Refused(str(got.error))
        return list(got.ids)

    return scan


def photo_entry(raw: str) -> str:
    """A photo as the service takes it: `@path`, a tray id or `sha256:<hex>` (a bare path gets its @)."""
    text = raw.strip()
    if (
        text
        and not text.startswith("@")
        and not text.startswith("sha256:")
        and Path(text).expanduser().is_file()
    ):
        return "@" + str(Path(text).expanduser())
    return text


SIGNING_HOOKS = ("parties", "what", "submit")
"""What every transfer screen says itself: who signs, what they sign, how it is saved."""


class TransferScreen(UnsavedWork):
    """Base of the receipt, handover, thaw and unit screens (subclasses set FIELDS and the
    signing hooks).

    A subclass that forgets a signing hook fails when its class statement runs
    (`__init_subclass__`), not when a pharmacist first opens it.
    """

    AUTO_FOCUS = "#cc-form Input"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("f4", "browse", "key.cc_browse"),
        Binding("escape", "back", "key.back"),
        Binding("f2", "app.next_language", "key.language"),
    ]
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()
    TITLE_ID = ""

    def __init__(
        self, ward: Ward, initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        super().__init__()
        self.ward = ward
        self.values: dict[str, Any] = {**self.defaults(), **(initial or {})}
        self.saving = False
        self.restore_focus = focus
        """The field to put the cursor in when the form opens (a draft reopened where it was left)."""
        self.kit_rule = ward.call(protocol.id_rule_for, ids.KIT)
        """The site's kit id rule (the protocol's format, if it declares one): each scan is checked at once."""
        self.scan_gap_s = ward.call(scanner.profile).gap_s
        """This laptop's scanner profile: the quiet gap that ends a scan in the list fields (None: Enter)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [h for h in SIGNING_HOOKS if getattr(cls, h) is getattr(TransferScreen, h)]
        if missing:
            raise TypeError(f"{cls.__name__} does not define the signing hooks {', '.join(missing)}")

    def defaults(self) -> dict[str, Any]:
        return {}

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, t(self.TITLE_ID))
        labels = [t(f.label) for f in self.FIELDS]
        width = min(MAX_LABEL, label_width(labels))
        with VerticalScroll(id="cc-form"):
            yield Static(t(self.TITLE_ID + "_help"), classes="muted")
            for f, label in zip(self.FIELDS, labels, strict=True):
                with Horizontal(classes="cc-row", id=f"row-{f.name}"):
                    yield Label(pad(label, width), classes="cc-label")
                    yield self._widget(f)
        yield Static("", id="cc-form-message", classes="muted")
        yield WardFooter()

    def _widget(self, f: FieldSpec) -> Any:
        wid = f"cc-{f.name}"
        value = self.values.get(f.name)
        if f.kind == "yesno":
            return WardSelect(
                [(t("form.yes"), "yes"), (t("form.no"), "no")],
                value=value if value in ("yes", "no") else Select.NULL,
                id=wid,
                classes="cc-input",
                compact=True,
                prompt=t("form.choose"),
            )
        if f.kind in ("kits", "photos"):
            return EntryList(
                normalise=kit_id if f.kind == "kits" else photo_entry,
                scan=kit_scanner(self.kit_rule) if f.kind == "kits" else None,
                entries=value or [],
                placeholder=t(f.hint) if f.hint else "",
                gap_s=self.scan_gap_s if f.kind == "kits" else None,  # photos: paths typed by hand, F4
                id=wid,
            )
        return WardInput(
            value="" if value is None else str(value),
            placeholder=t(f.hint) if f.hint else "",
            id=wid,
            classes="cc-input",
            compact=True,
        )

    @on(Input.Submitted, ".cc-input")
    def _next_field(self) -> None:
        """Enter moves on, like Tab (a scanner ends each code with Enter)."""
        self.focus_next()

    # -- values ------------------------------------------------------------------------
    def remember(self) -> None:
        """Collect what is on screen into `self.values` (before a recompose or a save)."""
        if not self.is_mounted:
            return
        for f in self.FIELDS:
            found = self.query(f"#cc-{f.name}")
            if not found:
                continue
            w = found.first()
            if isinstance(w, EntryList):
                self.values[f.name] = w.values()
            elif isinstance(w, Select):
                self.values[f.name] = None if w.is_blank() else w.value
            elif isinstance(w, Input):
                self.values[f.name] = w.value

    def typed(self) -> dict[str, Any]:
        self.remember()
        return without_blanks(self.values)

    def draft_key(self) -> tuple[str, str] | None:
        # "cc.receipt" -> "coldchain.receipt": the draft's form name
        return "coldchain." + self.TITLE_ID.removeprefix("cc."), ""

    def focused_field(self) -> str | None:
        focused = self.focused
        for f in self.FIELDS:
            found = self.query(f"#cc-{f.name}")
            if (
                found
                and focused is not None
                and (focused is found.first() or found.first() in focused.ancestors)
            ):
                return f.name
        return None

    def on_mount(self) -> None:
        if self.restore_focus:
            found = self.query(f"#cc-{self.restore_focus}")
            if found:
                widget = found.first()
                focus_now(widget.input if isinstance(widget, EntryList) else widget)

    def text(self, name: str) -> str:
        return str(self.values.get(name) or "").strip()

    def flag(self, name: str) -> bool:
        return self.values.get(name) == "yes"

    def set_value(self, name: str, value: str) -> None:
        self.values[name] = value
        found = self.query(f"#cc-{name}")
        if found and isinstance(found.first(), Input):
            found.first(Input).value = value

    # -- photos and files --------------------------------------------------------------
    def action_browse(self) -> None:
        """Pick a file for the focused path or photo field (F4)."""
        focused = self.focused
        target = None
        for f in self.FIELDS:
            if f.kind not in ("photos", "path"):
                continue
            w = self.query_one(f"#cc-{f.name}")
            if focused is not None and (focused is w or w in focused.ancestors):
                target = f
        if target is None:
            target = next((f for f in self.FIELDS if f.kind == "photos"), None)
        if target is None:
            return
        field = target

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            w = self.query_one(f"#cc-{field.name}")
            if isinstance(w, EntryList):
                w.add("@" + str(path))
            elif isinstance(w, Input):
                w.value = str(path)

        self.app.push_screen(PathDialog(kind="file", title=t(field.label)), chosen)

    # -- saving ------------------------------------------------------------------------
    @abstractmethod
    def parties(self) -> list[tuple[str, str]]:
        """(user, meaning) of every in-system party who signs now (every subclass says it)."""

    @abstractmethod
    def what(self) -> str:
        """What is being signed, in the e-signature dialog's words (every subclass says it)."""

    def precheck(self) -> str | None:
        """A problem to fix before anyone signs (None: go on to the signatures)."""
        return None

    @abstractmethod
    def submit(self, passwords: dict[str, str]) -> services.Recorded:
        """Call the service (in a worker thread; every subclass says which)."""

    def rehearse(self) -> services.Recorded | None:
        """Every rule checked before anyone signs (in a worker thread): the service run
        without signatures and rolled back (`services.preflight`). None: nothing to sign."""
        return None

    def action_save(self) -> None:
        """Sign and save (ctrl+s)."""
        if self.saving:
            return
        self.saving = True
        self.save_flow()

    @work(exclusive=True, group="form-save")
    async def save_flow(self) -> None:
        try:
            self.remember()
            problem = self.precheck()
            if problem:
                self._say(problem, refusal=True)
                return
            parties = self.parties()
            if self.flag("sign_later"):
                parties = [(u, m) for u, m in parties if u == self.ward.user]
            if parties:
                # Check before you sign: a refusal must come before anyone types a password.
                self._say(t("cc.checking"))
                checked = await self.run_worker(
                    self._try(self.rehearse), thread=True, group="cc-preflight"
                ).wait()
                if isinstance(checked, WardError):
                    self._say(message_of(checked), refusal=True)
                    return
            passwords = await collect_passwords(self, self.ward, self.what(), parties)
            if passwords is None:
                self._say(t("form.not_saved_cancelled"), refusal=True)
                return

            self._say(t("form.saving"))
            key = self.draft_key() if self.keeps_drafts else None
            result = await self.run_worker(
                self._try(
                    lambda: self.ward.call(lambda s: closing_draft(s, key, lambda: self.submit(passwords)))
                ),
                thread=True,
                group="cc-submit",
            ).wait()
            if isinstance(result, WardError):
                self._say(message_of(result), refusal=True)
                return
            self.saved(result)
        finally:
            self.saving = False

    @staticmethod
    def _try(call: Callable[[], Any]) -> Callable[[], Any]:
        """`call` for a worker: its result, or the WardError it raised (shown, not a crash)."""

        def run() -> Any:
            try:
                return call()
            except WardError as exc:
                return exc

        return run

    def saved(self, rec: services.Recorded) -> None:
        lines = [t("cc.saved", what=t(self.TITLE_ID), event=rec.event.id)]
        lines += [t("cc.warning", text=w) for w in rec.warnings]
        lines += [t("cc.awaiting_signature", who=p) for p in rec.pending_signatures]
        self.app.notify(
            "\n".join(lines), severity="warning" if rec.warnings or rec.pending_signatures else "information"
        )
        self.dismiss(rec)

    def _say(self, text: str, *, refusal: bool = False) -> None:
        line = self.query_one("#cc-form-message", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")
