"""The one form framework (issue 16): how every form screen is built and saved.

A form screen is a `FieldForm`. It lays out its fields as `FieldGroup` rows
of `FieldSpec`s (screens/widgets/fields.py) — a record form's come from the
protocol file, a custody form's from the screen's `FIELDS` — and says five
things about itself: its fields (`form_fields`), who signs (`signers`), what
they sign (`signing_what`), how it is checked before anyone signs
(`rehearse`) and how it is saved (`record`). Everything else is the
framework's, the same for every form:

- **Values**: `self.values` (and `problems`, `photo_notes`) are shared with
  the groups, so a recompose (language switch), the idle lock or a refusal
  loses nothing typed (`remember`, `typed`).
- **Drafts and Esc** (`UnsavedWork`): the form is kept as a draft each time
  the cursor leaves a field (`draft_key`, `focused_field`), reopened where it
  was left (`focus`), and Esc on a dirty form asks before discarding.
- **Marking**: a problem is shown under its field and the label turns red;
  when a save is refused over fields (the screen's own checks, or the
  service's `ValidationFailed`) every named field is marked, the first marked
  takes the cursor, and the message line says why (`show_problems`).
- **Type-ahead-safe focus**: the cursor moves at once (`focus_now`, the
  groups' Enter), never behind keys already typed.
- **F4** picks a file for the focused (or first) photo or path field: the
  photo picker for a protocol photo field, the path dialog for a custody
  form's photo list or file (`browse`).
- **Saving** (`ctrl+s`, `save_flow`): what is saved is read as the save
  begins (`freeze`: the service runs in a thread while the person may still
  type); the screen's own checks
  (`FieldGroup.check_own`) → when anyone signs, every rule checked before a
  password is asked (`rehearse`, in a thread) → each signer signs in the
  signature dialog in their own name → the service runs in a thread and the
  form's draft ends in the same transaction (`closing_draft`) → a problem the
  person may confirm (a soft range, a likely duplicate) asks one reason and
  saves again → refused: marked and said, nothing lost; saved: `saved`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from wardcrf.errors import ValidationFailed, WardError

from .errors import message_of
from .i18n import language, t
from .unsaved import UnsavedWork, closing_draft, without_blanks
from .ward import Ward
from .widgets.fields import BROWSABLE, FieldGroup, FieldSpec, is_soft
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.typeahead import SAVE_HOLD, hold_keys, release_keys

Signers = list[tuple[str, str]]
"""(user, meaning) of each in-system party who signs as the form is saved."""


def only_confirmable(result: Any) -> bool:
    """A refusal whose every problem the person may confirm with a reason (soft range, duplicate)."""
    return (
        isinstance(result, ValidationFailed)
        and bool(result.problems)
        and all(is_soft(v) for v in result.problems.values())
    )


def attempt(call: Callable[[], Any]) -> Callable[[], Any]:
    """`call` for a worker: its result, or the WardError it raised (shown, not a crash)."""

    def run() -> Any:
        try:
            return call()
        except WardError as exc:
            return exc

    return run


class FieldForm(UnsavedWork):
    """A form screen: field groups, drafts, marking, F4, and the check-sign-save flow."""

    BODY_ID: ClassVar[str] = "form"
    """The scrolling body the field groups sit in."""
    MESSAGE_ID: ClassVar[str] = "form-message"
    """The line under the form that says what happens (checking, saving, refused)."""
    SIGNATURE_CHECKED_AT_ONCE: ClassVar[bool] = False
    """True: the signature dialog checks each password as it is typed (a wrong one keeps the
    dialog, and counts toward lockout like a login); False: the service checks them inside the
    save (a wrong one refuses the save and keeps the form)."""

    def __init__(
        self, ward: Ward, initial: dict[str, Any] | None = None, *, focus: str | None = None
    ) -> None:
        super().__init__()
        self.ward = ward
        self.values: dict[str, Any] = dict(initial or {})
        self.problems: dict[str, str] = {}
        self.photo_notes: dict[str, str] = {}
        """What the photo picker found for each chosen file (`@path` -> "name · JPEG 640×480 · 52 KB")."""
        self.saving = False
        self.restore_focus = focus
        """The field to put the cursor in when the form opens (a draft reopened where it was left)."""

    # -- what each form says about itself ----------------------------------------------
    @abstractmethod
    def form_fields(self) -> list[FieldSpec]:
        """Every field the form lays out, in order (known before the screen is built)."""

    @abstractmethod
    def compose_fields(self) -> ComposeResult:
        """The field groups (and any widgets of the form's own) inside the form's body."""

    def form_title(self) -> str:
        return ""

    def help_text(self) -> str:
        return ""

    def note(self) -> str:
        """What the message line says before anything happens."""
        return ""

    def freeze(self) -> None:
        """Read what will be saved, as the save starts (on the UI thread: the service runs in a
        thread, and what is typed meanwhile is not part of this save)."""

    def precheck(self) -> dict[str, str]:
        """Problems to fix before anyone signs: the fields' own checks (field -> problem)."""
        problems: dict[str, str] = {}
        for group in self.groups:
            problems.update(group.check_own())
        return problems

    def signers(self) -> Signers:
        """(user, meaning) of each in-system party who signs now (none: nobody signs)."""
        return []

    def signing_what(self) -> str:
        """What is being signed, in the signature dialog's words."""
        return self.form_title()

    def rehearse(self) -> Any:
        """Every rule checked before anyone signs (in a thread): the service run without
        saving. Raises the WardError a save would raise."""
        return None

    @abstractmethod
    def record(self, passwords: dict[str, str], reason: str | None) -> Any:
        """Call the service (in a thread); `reason`: the person's reason for confirmable problems."""

    def saved(self, result: Any) -> None:
        """The service saved the form: say so and close."""
        self.dismiss(result)

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(self.ward, self.form_title())
        with VerticalScroll(id=self.BODY_ID):
            help_text = self.help_text()
            if help_text:
                yield Static(help_text, classes="muted")
            yield from self.compose_fields()
        yield Static(self.note(), id=self.MESSAGE_ID, classes="muted")
        yield WardFooter()

    @property
    def groups(self) -> list[FieldGroup]:
        """Every field group on the screen (one for most forms; more around the CT grid)."""
        return list(self.query(FieldGroup)) if self.is_mounted else []

    def group_of(self, name: str) -> FieldGroup | None:
        return next((g for g in self.groups if g.holds(name)), None)

    def field_at(self, widget: Widget | None) -> FieldSpec | None:
        """The field `widget` enters (the focused one: a list's text box is its field's)."""
        for group in self.groups:
            f = group.field_of(widget)
            if f is not None:
                return f
        return None

    # -- values ------------------------------------------------------------------------
    def remember(self) -> None:
        """Collect every widget's value into `self.values` (before a recompose or a save)."""
        for group in self.groups:
            group.remember()

    def typed(self) -> dict[str, Any]:
        self.remember()
        return without_blanks(self.values)

    def focused_field(self) -> str | None:
        f = self.field_at(self.focused)
        return f.name if f is not None else None

    def focus_field(self, name: str) -> bool:
        """Put the cursor in field `name` at once; False when it is not on the screen."""
        group = self.group_of(name)
        if group is None:
            return False
        group.focus_field(name)
        return True

    def on_mount(self) -> None:
        if self.restore_focus:
            self.focus_field(self.restore_focus)

    # -- problems ----------------------------------------------------------------------
    def _mark(self, name: str, problem: str) -> None:
        """Show `problem` under field `name` (kept in `problems` for a field outside any group)."""
        group = self.group_of(name)
        if group is not None:
            group.mark(name, problem)
        elif problem:
            self.problems[name] = problem
        else:
            self.problems.pop(name, None)

    def show_problems(self, problems: dict[str, str]) -> str | None:
        """Mark every field `problems` names (and clear the others); the first marked takes the
        cursor. Returns the first marked field's name."""
        names = [f.name for f in self.form_fields()]
        for name in names:
            self._mark(name, problems.get(name, ""))
        return next((n for n in names if n in problems and self.focus_field(n)), None)

    def refused(self, exc: WardError) -> None:
        """A refusal: the fields it names marked, its words on the message line; nothing lost."""
        if isinstance(exc, ValidationFailed):
            self.show_problems(exc.problems)
        self._say(message_of(exc), refusal=True)

    def _say(self, text: str, *, refusal: bool = False) -> None:
        line = self.query_one(f"#{self.MESSAGE_ID}", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")

    @on(FieldGroup.Scanned)
    def _scanned(self, message: FieldGroup.Scanned) -> None:
        """A scanned id refused at the scan is said on the message line too (cleared when good)."""
        self._say(message.problem, refusal=bool(message.problem))

    # -- F4: a file for a photo or path field -----------------------------------------
    def _browsable(self) -> list[FieldSpec]:
        return [f for f in self.form_fields() if f.kind in BROWSABLE]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "browse":
            return bool(self._browsable())  # a form with no file to pick does not offer F4
        return True

    def action_browse(self) -> None:
        """F4: pick a file for the focused photo or path field (else the first photo field)."""
        fields = self._browsable()
        if not fields:
            return
        focused = self.field_at(self.focused)
        photos = [f for f in fields if f.kind != "path"]
        f = focused if focused is not None and focused.kind in BROWSABLE else (photos or fields)[0]
        group = self.group_of(f.name)
        if group is None:
            return
        if f.kind == "photo":
            self._pick_photos(group, f)
        else:
            self._pick_path(group, f)

    def _pick_photos(self, group: FieldGroup, f: FieldSpec) -> None:
        """The photo picker (tray or folder, with preview); the photos chosen are listed under the field."""
        from .photo_picker import PhotoPicker

        picker = PhotoPicker(self.ward, f.label_in(language()))

        def chosen(paths: list[Any] | None) -> None:
            if not paths:
                return
            for path in paths:
                item = f"@{path}"
                done = picker.checked.get(path)
                if done is not None and done.ok:
                    self.photo_notes[item] = done.summary
                group.add_item(f.name, item)
            group.focus_field(f.name)

        self.app.push_screen(picker, chosen)

    def _pick_path(self, group: FieldGroup, f: FieldSpec) -> None:
        """The path dialog: a photo for a list (`@path`), or the file for a path field."""
        from .dialogs.path import PathDialog

        def chosen(path: Path | None) -> None:
            if path is not None:
                group.add_item(f.name, "@" + str(path))

        self.app.push_screen(PathDialog(kind="file", title=f.label_in(language())), chosen)

    # -- saving ------------------------------------------------------------------------
    def action_save(self) -> None:
        """Check, sign and save (ctrl+s)."""
        if self.saving:
            return
        self.saving = True
        # Held from this key on (the worker starts after the keys behind it would have run).
        hold_keys(self, SAVE_HOLD)
        self.save_flow()

    @work(exclusive=True, group="form-save")
    async def save_flow(self) -> None:
        """Keys typed behind ctrl+s wait for the verdict (screens/widgets/typeahead.py, 3)."""
        try:
            self.remember()
            self.freeze()
            problems = self.precheck()
            if problems:
                release_keys(self, SAVE_HOLD, drop=True)
                first = self.show_problems(problems) or next(iter(problems))
                self._say(problems[first], refusal=True)
                return
            signers = self.signers()
            passwords: dict[str, str] = {}
            if signers:
                # Check before you sign: a refusal must come before anyone types a password.
                self._say(t("form.checking"))
                checked = await self._in_thread(self.rehearse, "form-preflight")
                # Refused, or a password next: what was typed ahead goes nowhere.
                release_keys(self, SAVE_HOLD, drop=True)
                if isinstance(checked, WardError) and not only_confirmable(checked):
                    self.refused(checked)
                    return
                got = await self.collect_signatures(signers)
                if got is None:
                    self._say(t("form.not_saved_cancelled"))
                    return
                passwords = got
                hold_keys(self, SAVE_HOLD)
            result = await self._save(passwords, None)
            if only_confirmable(result):
                assert isinstance(result, ValidationFailed)
                from .dialogs.reason import ReasonDialog

                soft = result.problems
                release_keys(self, SAVE_HOLD)  # the reason dialog comes next: typed ahead, they are its
                reason = await self.app.push_screen_wait(
                    ReasonDialog(
                        title=t("form.soft_title"),
                        changes=[f"{k}: {v.split(';')[0]}" for k, v in soft.items()],
                    )
                )
                if reason is None:
                    self._say(t("form.not_saved_cancelled"))
                    return
                hold_keys(self, SAVE_HOLD)
                result = await self._save(passwords, reason)
            if isinstance(result, WardError):
                release_keys(self, SAVE_HOLD, drop=True)
                self.refused(result)
                return
            # Saved: what was typed behind ctrl+s is for the screen underneath, once it is back.
            release_keys(self, SAVE_HOLD)
            self.saved(result)
        finally:
            self.saving = False
            release_keys(self, SAVE_HOLD, drop=True)  # ended any other way: nothing typed lands here

    async def collect_signatures(self, signers: Signers) -> dict[str, str] | None:
        """Each signer signs in the dialog in their own name; their passwords, or None if one cancels."""
        from .dialogs.sign import SignatureDialog

        ward = self.ward

        def checked_at_once(signer: str, password: str) -> str:
            ward.call(lambda s: ward.site.verify_password(s, signer, password))
            return password

        def checked_in_the_save(signer: str, password: str) -> str:
            return password

        check = checked_at_once if self.SIGNATURE_CHECKED_AT_ONCE else checked_in_the_save
        what = self.signing_what()
        passwords: dict[str, str] = {}
        for user, meaning in signers:
            if not user or user in passwords:
                continue
            got = await self.app.push_screen_wait(
                SignatureDialog(what=what, meaning=meaning, signer=user, sign=check)
            )
            if got is None:
                return None
            passwords[user] = got
        return passwords

    async def _save(self, passwords: dict[str, str], reason: str | None) -> Any:
        """The service in a thread, the form's draft ended in the same transaction."""
        self._say(t("form.saving"))
        key = self.draft_key() if self.keeps_drafts else None
        return await self._in_thread(
            lambda: self.ward.call(lambda s: closing_draft(s, key, lambda: self.record(passwords, reason))),
            "form-submit",
        )

    async def _in_thread(self, call: Callable[[], Any], group: str) -> Any:
        return await self.run_worker(attempt(call), thread=True, group=group).wait()
