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

The screen is a `FieldForm` (screens/field_form.py, the one form framework:
field rows, drafts, marking, F4, check-sign-save), its rows a `FieldGroup` of
the protocol's fields (screens/widgets/fields.py), as in the dose wizard. A
screen may lay out several groups of one form around widgets of its own
(the CT grid: fields above and below the segment grid); the values and
problems dicts are shared between the screen and its groups, and `_mark`
shows a problem on whichever group holds the field.

Photo fields take `@path`, tray ids or `sha256:` items; F4 opens the photo
picker (tray or folder, with preview) for the focused (or first) photo
field, and the photos chosen are listed under it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from wardcrf import protocol as protocols
from wardcrf.workflow import service as form_service

from .field_form import FieldForm, Signers
from .i18n import language, t
from .keys import LANGUAGE
from .ward import Ward
from .widgets.fields import FieldGroup, FieldSpec, split_photo_items
from .widgets.typeahead import focus_now

# Who signs a form as it is saved: (user, meaning) from the values typed.
SignersOf = Callable[[dict[str, Any], str], Signers]
SIGNERS: dict[str, SignersOf] = {
    "consent": lambda v, me: [
        (me, "authored"),
        (str(v.get("witness_1") or ""), "witnessed"),
        (str(v.get("witness_2") or ""), "witnessed"),
    ],
    "signoff": lambda v, me: [(me, "approved")],
}


class FormScreen(FieldForm):
    """Enter one record of `form` (for `participant`, or a new one for consent)."""

    CSS_PATH = "form_screen.tcss"
    AUTO_FOCUS = ".field-input"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", priority=True),
        Binding("escape", "back", "key.back"),
        LANGUAGE,
        Binding("f4", "browse", "photo.key_pick"),
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
        super().__init__(ward, initial, focus=focus)
        self.form_name = form
        self.participant = participant
        # the participant's version (enrolled under it or amended to it): the form their record is checked by
        self.proto = ward.call(form_service.protocol_for, participant, form)
        self.form = self.proto.form(form)
        self.submission: dict[str, Any] = {}
        """What this save sends the service (`freeze`, as the save starts)."""

    # -- what the form is ------------------------------------------------------------
    def _fields(self) -> list[protocols.Field]:
        return [f for f in self.form.fields.values() if not f.computed]

    def form_fields(self) -> list[FieldSpec]:
        return [FieldSpec.of(f) for f in self._fields()]

    def form_title(self) -> str:
        who = f" · {self.participant}" if self.participant else ""
        return f"{protocols.tr(self.form.label, language())}{who}"

    def help_text(self) -> str:
        return protocols.tr(self.form.help, language())

    def note(self) -> str:
        return t("form.required_note")

    # -- layout ----------------------------------------------------------------------
    def compose_fields(self) -> ComposeResult:
        yield self._field_group(None, id="form-fields")

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

    # -- fields outside the groups (the CT grid's cells share the `field-` ids) ---------
    def focused_field(self) -> str | None:
        fid = self.focused.id if self.focused is not None else None
        return fid.removeprefix("field-") if fid and fid.startswith("field-") else super().focused_field()

    def focus_field(self, name: str) -> bool:
        if super().focus_field(name):
            return True
        found = self.query(f"#field-{name}")
        if found:
            focus_now(found.first())
        return bool(found)

    # -- values ----------------------------------------------------------------------
    def draft_key(self) -> tuple[str, str] | None:
        return self.form_name, f"participant:{self.participant}" if self.participant else ""

    def raw_values(self) -> dict[str, Any]:
        """What the service receives: typed values, blanks left out (defaults apply).

        A photo field's text becomes the list of its items.
        """
        self.remember()
        out = {k: v for k, v in self.values.items() if v not in (None, "", [])}
        for f in self._fields():
            if f.type == "photo" and isinstance(out.get(f.name), str):
                out[f.name] = split_photo_items(out[f.name])
        return out

    # -- saving ----------------------------------------------------------------------
    def freeze(self) -> None:
        self.submission = self.raw_values()

    def signers(self) -> Signers:
        """Consent: the doctor and both witnesses; sign-off: the investigator; else nobody."""
        signers = SIGNERS.get(self.form_name)
        return signers(self.submission, self.ward.user) if signers else []

    def signing_what(self) -> str:
        return f"{protocols.tr(self.form.label, language())} {self.participant or ''}".strip()

    def rehearse(self) -> Any:
        """`workflow.preflight`: the checked submission, or the WardError a save would raise."""
        from wardcrf import workflow

        return self.ward.call(
            workflow.preflight, self.form_name, self.submission, participant=self.participant
        )

    def record(self, passwords: dict[str, str], reason: str | None) -> Any:
        """`workflow.submit`; the signers' passwords are verified inside the save."""
        from wardcrf import workflow

        return self.ward.call(
            workflow.submit,
            self.form_name,
            self.submission,
            participant=self.participant,
            reason=reason,
            confirm=reason is not None,
            password_for=lambda user: passwords.get(user, ""),
        )

    def saved(self, result: Any) -> None:
        self.app.notify(
            t(
                "form.saved",
                form=protocols.tr(self.form.label, language()),
                subject=(result.subject or "").removeprefix("participant:"),
            )
        )
        self.dismiss(result)
