"""One clinical form, generated from the protocol's field definitions.

Each field shows its translated label (from the protocol file), a `*` when
required, the unit beside it, and the allowed range as a hint. Values are
checked as they are typed by the same validator the service uses
(`wardcrf.forms.check`, one field at a time): a hard-range value is refused
on the spot with the allowed range; a soft-range value is marked, and on
save the reason dialog asks why it is right. Saving calls
`wardcrf.workflow.submit` in a worker; every problem it reports is shown
beside its field and nothing typed is lost (nor on lock or language switch:
values live in `self.values` and the screen recomposes from them).

Forms that carry e-signatures (consent: the doctor and both witnesses;
sign-off: the investigator) ask each signer's password in the signature
dialog before saving; the service verifies them inside the save.

The field rows are a `FieldGroup` (screens/widgets/fields.py), shared with the dose
wizard. A screen may lay out several groups of one form around widgets of
its own (the CT grid: fields above and below the segment grid); the values
and problems dicts are shared between the screen and its groups, and
`_mark` shows a problem on whichever group holds the field.

Photo fields take `@path`, tray ids or `sha256:` items; F4 opens the photo
picker (tray or folder, with preview) for the focused (or first) photo
field, and the photos chosen are listed under it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from wardcrf import protocol as protocols
from wardcrf.errors import ValidationFailed, WardError
from wardcrf.workflow import service as form_service

from .errors import message_of
from .i18n import language, t
from .keys import LANGUAGE
from .unsaved import UnsavedWork, closing_draft, without_blanks
from .ward import Ward
from .widgets.fields import FieldGroup, is_soft, split_photo_items
from .widgets.footer import WardFooter
from .widgets.status import StatusBar
from .widgets.typeahead import focus_now

# Who signs a form as it is saved: (user, meaning) from the values typed.
Signers = Callable[[dict[str, Any], str], list[tuple[str, str]]]
SIGNERS: dict[str, Signers] = {
    "consent": lambda v, me: [
        (me, "authored"),
        (str(v.get("witness_1") or ""), "witnessed"),
        (str(v.get("witness_2") or ""), "witnessed"),
    ],
    "signoff": lambda v, me: [(me, "approved")],
}


class FormScreen(UnsavedWork):
    """Enter one record of `form` (for `participant`, or a new one for consent)."""

    CSS_PATH = "form_screen.tcss"
    AUTO_FOCUS = ".field-input"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
        Binding("f4", "pick_photo", "photo.key_pick"),
    ]

    def __init__(
        self,
        ward: Ward,
        form: str,
        participant: str | None = None,
        initial: dict[str, Any] | None = None,
        *,
        focus: str | None = None,
    ) -> None:
        super().__init__()
        self.ward = ward
        self.restore_focus = focus
        """The field to put the cursor in when the form opens (a draft reopened where it was left)."""
        self.form_name = form
        self.participant = participant
        # the participant's version (enrolled under it or amended to it): the form their record is checked by
        self.proto = ward.call(form_service.protocol_for, participant, form)
        self.form = self.proto.form(form)
        self.values: dict[str, Any] = dict(initial or {})
        self.problems: dict[str, str] = {}
        self.saving = False
        self.photo_notes: dict[str, str] = {}
        """What the picker found for each chosen file (`@path` -> "name · JPEG 640×480 · 52 KB")."""

    # -- layout ----------------------------------------------------------------------
    def _fields(self) -> list[protocols.Field]:
        return [f for f in self.form.fields.values() if not f.computed]

    def compose(self) -> ComposeResult:
        lang = language()
        title = protocols.tr(self.form.label, lang)
        who = f" · {self.participant}" if self.participant else ""
        yield StatusBar(self.ward, f"{title}{who}")
        with VerticalScroll(id="form"):
            help_text = protocols.tr(self.form.help, lang)
            if help_text:
                yield Static(help_text, classes="muted")
            yield self._field_group(None, id="form-fields")
        yield Static(t("form.required_note"), id="form-message", classes="muted")
        yield WardFooter()

    def _field_group(self, fields: list[protocols.Field] | None, *, id: str) -> FieldGroup:
        """Rows for `fields` (None: all), sharing this screen's values, problems and photo notes."""
        return FieldGroup(
            self.form,
            zone=self.ward.session.ctx.zone,
            user=self.ward.user,
            values=self.values,
            problems=self.problems,
            names=None if fields is None else [f.name for f in fields],
            photo_notes=self.photo_notes,
            id=id,
        )

    @property
    def group(self) -> FieldGroup:
        return self.query_one("#form-fields", FieldGroup)

    @property
    def groups(self) -> list[FieldGroup]:
        """Every field group on the screen (one for a generated form, more on the CT grid)."""
        return list(self.query(FieldGroup)) if self.is_mounted else []

    def _group_of(self, name: str) -> FieldGroup | None:
        return next((g for g in self.groups if g.holds(name)), None)

    # -- photos ----------------------------------------------------------------------
    def _photo_fields(self) -> list[protocols.Field]:
        return [f for f in self._fields() if f.type == "photo"]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pick_photo":
            return bool(self._photo_fields())
        return True

    def action_pick_photo(self) -> None:
        """F4: choose photos from the tray or a folder for the focused (or first) photo field."""
        fields = self._photo_fields()
        if not fields:
            return
        focused = (self.focused.id or "").removeprefix("field-") if self.focused else ""
        f = next((x for x in fields if x.name == focused), fields[0])
        from .photo_picker import PhotoPicker

        picker = PhotoPicker(self.ward, protocols.tr(f.label, language()))

        def chosen(paths: list[Any] | None) -> None:
            if not paths:
                return
            widget = self.query_one(f"#field-{f.name}", Input)
            items = split_photo_items(widget.value)
            for path in paths:
                item = f"@{path}"
                done = picker.checked.get(path)
                if done is not None and done.ok:
                    self.photo_notes[item] = done.summary
                if item not in items:
                    items.append(item)
            # the group's change handler stores the value and relists the photos
            widget.value = ", ".join(items)
            widget.focus()

        self.app.push_screen(picker, chosen)

    # -- values ----------------------------------------------------------------------
    def remember(self) -> None:
        """Collect every widget's value into `self.values` (before a recompose or save)."""
        for group in self.groups:
            group.remember()

    def typed(self) -> dict[str, Any]:
        self.remember()
        return without_blanks(self.values)

    def draft_key(self) -> tuple[str, str] | None:
        return self.form_name, f"participant:{self.participant}" if self.participant else ""

    def focused_field(self) -> str | None:
        fid = self.focused.id if self.focused is not None else None
        return fid.removeprefix("field-") if fid and fid.startswith("field-") else None

    def on_mount(self) -> None:
        if self.restore_focus:
            found = self.query(f"#field-{self.restore_focus}")
            if found:
                focus_now(found.first())

    def raw_values(self) -> dict[str, Any]:
        """What the service receives: typed values, blanks left out (defaults apply).

        A photo field's text becomes the list of its items.
        """
        self.remember()
        out = {k: v for k, v in self.values.items() if v not in (None, "", [])}
        for f in self._photo_fields():
            if isinstance(out.get(f.name), str):
                out[f.name] = split_photo_items(out[f.name])
        return out

    def _mark(self, name: str, problem: str) -> None:
        """Show `problem` under field `name` (kept in `problems` for a field outside any group)."""
        group = self._group_of(name)
        if group is not None:
            group.mark(name, problem)
        elif problem:
            self.problems[name] = problem
        else:
            self.problems.pop(name, None)

    # -- saving ----------------------------------------------------------------------
    def action_save(self) -> None:
        """Save the record (ctrl+s): signatures, soft-range reasons, then the service."""
        if self.saving:
            return
        self.saving = True
        self.save_flow()

    @work(exclusive=True, group="form-save")
    async def save_flow(self) -> None:
        try:
            raw = self.raw_values()
            passwords: dict[str, str] = {}
            signers = SIGNERS.get(self.form_name)
            if signers:
                # Check before you sign: every rule runs before anyone is asked for a password.
                checked = await self._preflight(raw)
                if isinstance(checked, WardError) and not (
                    isinstance(checked, ValidationFailed)
                    and checked.problems
                    and all(is_soft(v) for v in checked.problems.values())
                ):
                    self._show_failure(checked)
                    return
                from .dialogs.sign import SignatureDialog

                for user, meaning in signers(raw, self.ward.user):
                    if not user or user in passwords:
                        continue
                    got = await self.app.push_screen_wait(
                        SignatureDialog(
                            what=f"{protocols.tr(self.form.label, language())}"
                            f" {self.participant or ''}".strip(),
                            meaning=meaning,
                            signer=user,
                            sign=lambda u, p: p,
                        )
                    )
                    if got is None:
                        self._say(t("form.not_saved_cancelled"))
                        return
                    passwords[user] = got
            result = await self._submit(raw, passwords, None)
            if isinstance(result, ValidationFailed):
                soft = {k: v for k, v in result.problems.items() if is_soft(v)}
                if soft and len(soft) == len(result.problems):
                    from .dialogs.reason import ReasonDialog

                    reason = await self.app.push_screen_wait(
                        ReasonDialog(
                            title=t("form.soft_title"),
                            changes=[f"{k}: {v.split(';')[0]}" for k, v in soft.items()],
                        )
                    )
                    if reason is None:
                        self._say(t("form.not_saved_cancelled"))
                        return
                    result = await self._submit(raw, passwords, reason)
            if isinstance(result, WardError):
                self._show_failure(result)
                return
            self.app.notify(
                t(
                    "form.saved",
                    form=protocols.tr(self.form.label, language()),
                    subject=(result.subject or "").removeprefix("participant:"),
                )
            )
            self.dismiss(result)
        finally:
            self.saving = False

    async def _preflight(self, raw: dict[str, Any]) -> Any:
        """`workflow.preflight` in a thread: the checked submission, or the WardError a save would raise."""
        from wardcrf import workflow

        def call() -> Any:
            try:
                return self.ward.call(workflow.preflight, self.form_name, raw, participant=self.participant)
            except WardError as exc:
                return exc

        self._say(t("form.checking"))
        return await self.run_worker(call, thread=True, group="form-preflight").wait()

    async def _submit(self, raw: dict[str, Any], passwords: dict[str, str], reason: str | None) -> Any:
        """Run the service in a thread; returns the event or the WardError it raised."""
        from wardcrf import workflow

        def password_for(user: str) -> str:
            return passwords.get(user, "")

        key = self.draft_key() if self.keeps_drafts else None

        def call() -> Any:
            try:
                return self.ward.call(
                    lambda s: closing_draft(
                        s,
                        key,
                        lambda: workflow.submit(
                            s,
                            self.form_name,
                            raw,
                            participant=self.participant,
                            reason=reason,
                            confirm=reason is not None,
                            password_for=password_for,
                        ),
                    )
                )
            except WardError as exc:
                return exc

        self._say(t("form.saving"))
        worker = self.run_worker(call, thread=True, group="form-submit")
        return await worker.wait()

    def _show_failure(self, exc: WardError) -> None:
        if isinstance(exc, ValidationFailed):
            for f in self._fields():
                self._mark(f.name, exc.problems.get(f.name, ""))
            first = next((n for n in exc.problems if self.query(f"#field-{n}")), None)
            if first:
                self.query_one(f"#field-{first}").focus()
        self._say(message_of(exc), refusal=True)

    def _say(self, text: str, *, refusal: bool = False) -> None:
        line = self.query_one("#form-message", Static)
        line.update(text)
        line.set_class(refusal, "refusal")
        line.set_class(not refusal, "muted")
