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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Label, Select, SelectionList, Static

from wardcrf import forms as validation
from wardcrf import protocol as protocols
from wardcrf.clock import now_utc
from wardcrf.errors import ValidationFailed, WardError

from .errors import message_of
from .footer import WardFooter
from .i18n import label_width, language, pad, t
from .status import StatusBar
from .ward import Ward

SOFT_MARK = "expected range"
MAX_LABEL = 26

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


_PHOTO_ITEM_START = re.compile(r",\s*(?=@|sha256:|[0-9a-fA-F]{8,64}\s*(?:,|$))")


def split_photo_items(text: str) -> list[str]:
    """A photo field's typed text -> its items (`@path`, tray id, `sha256:...`).

    Items are separated by commas, but only a comma that starts another item
    splits, so a picked file whose path holds a comma stays whole.
    """
    return [x.strip() for x in _PHOTO_ITEM_START.split(text or "") if x.strip()]


def _range_hint(f: protocols.Field) -> str:
    if f.hard:
        lo, hi = f.hard
        return f"{validation._fmt(lo)}–{validation._fmt(hi)}"
    if f.type == "date":
        return "YYYY-MM-DD"
    if f.type == "datetime":
        return "HH:MM / YYYY-MM-DD HH:MM"
    return ""


class FormScreen(Screen[Any]):
    """Enter one record of `form` (for `participant`, or a new one for consent)."""

    CSS_PATH = "form_screen.tcss"
    AUTO_FOCUS = ".field-input"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("escape", "app.pop_screen", "key.back"),
        Binding("f2", "app.next_language", "key.language"),
        Binding("f4", "pick_photo", "photo.key_pick"),
    ]

    def __init__(
        self, ward: Ward, form: str, participant: str | None = None, initial: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.ward = ward
        self.form_name = form
        self.participant = participant
        self.proto = ward.call(lambda s: protocols.active(s.store))
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
            yield from self._field_rows(self._fields(), lang)
        yield Static(t("form.required_note"), id="form-message", classes="muted")
        yield WardFooter()

    def _label(self, f: protocols.Field, lang: str) -> str:
        return protocols.tr(f.label, lang) + (" *" if f.required else "")

    def _field_rows(self, fields: list[protocols.Field], lang: str) -> ComposeResult:
        """Label, input, unit and the problem line of each field, labels lined up."""
        labels = {f.name: self._label(f, lang) for f in fields}
        width = min(MAX_LABEL, label_width(list(labels.values())))
        for f in fields:
            with Horizontal(classes="field-row", id=f"row-{f.name}"):
                yield Label(pad(labels[f.name], width), classes="field-label")
                yield self._widget(f, lang)
                yield Label(f.unit or "", classes="field-unit")
            yield from self._below_field(f)
            yield Static(
                self.problems.get(f.name, ""),
                id=f"problem-{f.name}",
                classes="field-problem" + (" -shown" if f.name in self.problems else ""),
            )

    def _below_field(self, f: protocols.Field) -> ComposeResult:
        """Extra lines under a field: a photo field lists the photos it holds."""
        if f.type == "photo":
            yield Static(self._photo_lines(f.name), id=f"photos-{f.name}", classes="photo-list")

    def _photo_lines(self, name: str) -> str:
        items = split_photo_items(str(self.values.get(name) or ""))
        if not items:
            return t("photo.field_none")
        return "\n".join(
            t("photo.field_item", n=i, what=self.photo_notes.get(item, item))
            for i, item in enumerate(items, 1)
        )

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
            widget.value = ", ".join(items)
            widget.focus()

        self.app.push_screen(picker, chosen)

    def _widget(self, f: protocols.Field, lang: str) -> Any:
        wid = f"field-{f.name}"
        value = self.values.get(f.name)
        if f.type == "choice" and f.multiple:
            chosen = {str(v) for v in (value or [])}
            return SelectionList[str](
                *[(protocols.tr(c.label, lang), str(c.code), str(c.code) in chosen) for c in f.choices],
                id=wid,
                classes="field-input field-multi",
                compact=True,
            )
        if f.type == "choice":
            options = [(protocols.tr(c.label, lang), str(c.code)) for c in f.choices]
            current = (
                str(value)
                if value is not None and any(str(c.code) == str(value) for c in f.choices)
                else None
            )
            return Select(
                options,
                value=current if current is not None else Select.NULL,
                id=wid,
                classes="field-input",
                compact=True,
                prompt=t("form.choose"),
            )
        if f.type == "boolean":
            current = None if value is None else ("yes" if value in (True, "yes") else "no")
            return Select(
                [(t("form.yes"), "yes"), (t("form.no"), "no")],
                value=current if current is not None else Select.NULL,
                id=wid,
                classes="field-input",
                compact=True,
                prompt=t("form.choose"),
            )
        return Input(
            value="" if value is None else str(value),
            placeholder=_range_hint(f),
            id=wid,
            classes="field-input",
            compact=True,
        )

    def on_mount(self) -> None:
        for name, problem in self.problems.items():
            self._mark(name, problem)

    # -- values ----------------------------------------------------------------------
    def remember(self) -> None:
        """Collect every widget's value into `self.values` (before a recompose or save)."""
        if not self.is_mounted:
            return
        for f in self._fields():
            widgets = self.query(f"#field-{f.name}")
            if not widgets:
                continue
            self.values[f.name] = self._read(f, widgets.first())

    def _read(self, f: protocols.Field, widget: Any) -> Any:
        if isinstance(widget, SelectionList):
            codes = list(widget.selected)
            return [c.code for c in f.choices if str(c.code) in codes]
        if isinstance(widget, Select):
            if widget.is_blank():
                return None
            if f.type == "boolean":
                return widget.value == "yes"
            return next((c.code for c in f.choices if str(c.code) == widget.value), widget.value)
        return widget.value

    def raw_values(self) -> dict[str, Any]:
        """What the service receives: typed values, blanks left out (defaults apply)."""
        self.remember()
        out = {k: v for k, v in self.values.items() if v not in (None, "", [])}
        for f in self._photo_fields():
            if isinstance(out.get(f.name), str):
                out[f.name] = split_photo_items(out[f.name])
        return out

    @on(Input.Submitted, ".field-input")
    def _next_field(self) -> None:
        """Enter moves on, like Tab: barcode scanners end each code with Enter."""
        self.focus_next()

    # -- inline checks ---------------------------------------------------------------
    @on(Input.Changed, ".field-input")
    @on(Select.Changed, ".field-input")
    @on(SelectionList.SelectedChanged, ".field-input")
    def _changed(self, event: Any) -> None:
        widget = event.control if hasattr(event, "control") else event.selection_list
        name = (widget.id or "").removeprefix("field-")
        f = self.form.fields.get(name)
        if f is None:
            return
        value = self._read(f, widget)
        self.values[name] = value
        self._check_one(f, value)
        if f.type == "photo":
            shown = self.query(f"#photos-{name}")
            if shown:
                shown.first(Static).update(self._photo_lines(name))

    def _check_one(self, f: protocols.Field, value: Any) -> None:
        if f.type == "photo" or value in (None, "", []):
            self._mark(f.name, "")
            return
        ctx = validation.Context(now=now_utc(), zone=self.ward.session.ctx.zone, user=self.ward.user)
        checked = validation.check(self.form, {f.name: value}, ctx, partial=True)
        self._mark(f.name, checked.problems.get(f.name, ""))

    def _mark(self, name: str, problem: str) -> None:
        self.problems[name] = problem
        if not problem:
            self.problems.pop(name, None)
        found = self.query(f"#problem-{name}")
        if not found:
            return
        line = found.first(Static)
        soft = SOFT_MARK in problem
        text = problem
        if soft:
            text = problem.split(";")[0] + " — " + t("form.soft_reason")
        line.update(text)
        line.set_class(bool(problem), "-shown")
        line.set_class(bool(problem) and not soft, "refusal")
        line.set_class(soft, "soft")
        row = self.query(f"#row-{name}")
        if row:
            row.first().set_class(bool(problem) and not soft, "-invalid")

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
                from .sign_dialog import SignatureDialog

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
                soft = {k: v for k, v in result.problems.items() if SOFT_MARK in v}
                if soft and len(soft) == len(result.problems):
                    from .reason_dialog import ReasonDialog

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

    async def _submit(self, raw: dict[str, Any], passwords: dict[str, str], reason: str | None) -> Any:
        """Run the service in a thread; returns the event or the WardError it raised."""
        from wardcrf import workflow

        def password_for(user: str) -> str:
            return passwords.get(user, "")

        def call() -> Any:
            try:
                return self.ward.call(
                    workflow.submit,
                    self.form_name,
                    raw,
                    participant=self.participant,
                    reason=reason,
                    confirm=reason is not None,
                    password_for=password_for,
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
