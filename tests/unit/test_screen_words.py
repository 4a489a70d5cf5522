"""The domain's words as a screen shows them (issue 14, finding 9): no command line, local times.

`screens.errors.for_screen` is what every refusal and field problem on a
screen goes through. The CLI and the log keep the words as they are.
"""

from __future__ import annotations

import pytest
from wardcrf.screens import times
from wardcrf.screens.errors import for_screen


@pytest.fixture(autouse=True)
def _wuhan():
    times.set_zone("Asia/Shanghai")
    yield
    times.set_zone("UTC")


@pytest.mark.parametrize(
    ("domain", "screen"),
    [
        # a bracketed aside naming a flag or a command goes
        ("logger serial missing (--logger-serial)", "logger serial missing"),
        ("unknown participant X-9 (see `wardcrf participant list`)", "unknown participant X-9"),
        # a clause naming a command goes, the statement before it stays
        (
            "WUH01-001 was already screened (record ABC); correct it with `wardcrf amend`, "
            "an id is never screened twice",
            "WUH01-001 was already screened (record ABC)",
        ),
        # UTC becomes the ward's time, its zone marked
        ("handover at 2020-03-16T00:50:00Z is not after", "handover at 2020-03-16 08:50 UTC+8 is not after"),
    ],
)
def test_command_line_words_go_and_times_are_local(domain, screen):
    assert for_screen(domain) == screen


@pytest.mark.parametrize(
    "kept",
    [
        "37.9 °C is outside the allowed range 30 to 43 C",
        "kit KIT-A1 is quarantined (excursion EXC-1)",  # a bracket naming no command stays
        "wardcrf; a word, not a command",
        "",
    ],
)
def test_words_naming_no_command_stay_as_they_are(kept):
    assert for_screen(kept) == kept


def test_control_characters_and_long_text_pass_through_without_a_crash():
    hostile = "x" * 10_000 + "\x1b[31m; `wardcrf " + "(" * 500
    assert isinstance(for_screen(hostile), str)


def test_screens_offer_a_reason_for_flagged_problems_only_not_for_their_words():
    """Confirmable or refusal is the domain's flag (`errors.Confirmable`), never guessed from words."""
    from wardcrf.screens.widgets.fields import is_soft

    from wardcrf.errors import Confirmable

    assert is_soft(Confirmable("WUH01-001 already has an adverse event 'fever'; confirm it"))
    assert is_soft(Confirmable("40.1 C is outside the expected range 35 to 39.5 C"))
    # the same words without the flag refuse: a reworded message cannot turn a refusal into a warning
    assert not is_soft("40.1 C is outside the expected range 35 to 39.5 C; confirm it (--confirm)")
    assert not is_soft("260 /min is outside the allowed range 20 to 250 /min")
