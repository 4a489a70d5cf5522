"""Choose which form to fill in for a participant (only those the role may submit)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from wardcrf import protocol as protocols

from .i18n import language, t
from .ward import Ward
from .widgets.footer import WardFooter
from .widgets.typeahead import WardOptionList


def forms_for(ward: Ward, *, participant: bool = True, who: str | None = None) -> list[tuple[str, str]]:
    """(form name, translated label) of the participant forms this role may submit; with `who`, the forms of
    that participant's protocol version (enrolled under it or amended to it), else the active version's."""
    from wardcrf.workflow import service
    from wardcrf.workflow.base import rule_for

    proto = ward.call(service.protocol_for, who)
    out = []
    for name, form in proto.forms.items():
        rule = rule_for(name)
        if rule.participant != participant or name == "consent":
            continue
        if ward.can(rule.action):
            out.append((name, protocols.tr(form.label, language())))
    return out


def screen_for(
    ward: Ward,
    form: str,
    participant: str | None,
    initial: dict[str, Any] | None = None,
    *,
    focus: str | None = None,
) -> Any:
    """The screen that enters `form`: a form whose version declares sections has its grid
    (`form_sections.of`, docs/protocol.md "Sections: a scored grid"), every other form is generated."""
    from wardcrf.engine import form_sections
    from wardcrf.workflow import service

    proto = ward.call(service.protocol_for, participant, form)
    if form_sections.of(proto, form) is not None:
        from .section_grid import SectionGridScreen

        return SectionGridScreen(ward, form, participant, initial, focus=focus)
    from .form_screen import FormScreen

    return FormScreen(ward, form, participant, initial, focus=focus)


class FormPicker(ModalScreen[str | None]):
    """Dismissed with a form name, or None (Esc)."""

    CSS_PATH = "dialogs/dialogs.tcss"
    AUTO_FOCUS = "#forms"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "key.cancel")]

    def __init__(self, ward: Ward, participant: str) -> None:
        super().__init__()
        self.ward = ward
        self.participant = participant

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(t("picker.title", participant=self.participant), classes="dialog-title")
            choices = forms_for(self.ward, who=self.participant)
            if choices:
                yield WardOptionList(*[Option(Text(label), id=name) for name, label in choices], id="forms")
            else:
                yield Static(t("picker.none", role=t("role." + self.ward.role)), classes="refusal")
        yield WardFooter()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(OptionList.OptionSelected, "#forms")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
