"""Which terminal graphics protocol draws photographs, decided once before the app starts.

A consent page drawn with half blocks (two pixels per cell) is a picture of
a page, not a page anyone can read: 120 columns give 120x80 pixels. Kitty's
graphics protocol and Sixel draw real pixels, so where the terminal speaks
one, the audit desk and the photo view draw through textual-image.

textual-image decides which protocol the terminal speaks by querying it
(escape sequences answered on stdin) when it is first imported, which is
only possible before Textual takes the terminal over; `prepare` therefore
runs in `run_app`, before the app starts. It imports textual-image only when
the terminal may have a protocol (it names itself Kitty, WezTerm, iTerm2,
foot, mlterm, Contour or Konsole, or ``WARDCRF_IMAGES`` asks), so a plain
terminal's start-up pays nothing and is never sent a query. Everywhere else
photos stay half blocks, and the "export a verified copy" key is the way to
read them (in an image viewer).

``WARDCRF_IMAGES``: ``auto`` (the default), ``off``, ``kitty`` or ``sixel``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from wardcrf.errors import UsageError

CHOICES = ("auto", "off", "kitty", "sixel")

_KITTY_TERMS = ("xterm-kitty",)
_GRAPHICS_PROGRAMS = ("iterm.app", "wezterm", "kitty", "konsole", "mlterm", "contour")
_GRAPHICS_TERMS = ("foot", "mlterm", "contour", "wezterm", "sixel", "yaft", "mintty")

_chosen: tuple[str, Any] | None = None
"""(protocol name, textual-image widget class), once `prepare` found one."""


def setting(env: Mapping[str, str]) -> str:
    """The ``WARDCRF_IMAGES`` setting; refuses a value that is not one of `CHOICES`."""
    value = env.get("WARDCRF_IMAGES", "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise UsageError(
            f"WARDCRF_IMAGES={value[:40]!r} is not a setting: use {', '.join(CHOICES)} "
            "(auto: a graphics protocol where the terminal has one)"
        )
    return value


def may_have_graphics(env: Mapping[str, str]) -> bool:
    """Whether the terminal names itself as one that may speak Kitty graphics or Sixel (no query sent)."""
    term = env.get("TERM", "").lower()
    program = env.get("TERM_PROGRAM", "").lower()
    return (
        "KITTY_WINDOW_ID" in env
        or "WEZTERM_EXECUTABLE" in env
        or "KONSOLE_VERSION" in env
        or term in _KITTY_TERMS
        or program in _GRAPHICS_PROGRAMS
        or any(name in term for name in _GRAPHICS_TERMS)
    )


def prepare(env: Mapping[str, str] | None = None, *, tty: bool | None = None) -> str | None:
    """Decide the protocol for this run (call before the app starts); returns its name or None.

    Refuses a bad ``WARDCRF_IMAGES`` (UsageError). Without a terminal on
    stdout nothing is queried and photos stay half blocks.
    """
    global _chosen
    env = os.environ if env is None else env
    wanted = setting(env)
    _chosen = None
    if tty is None:
        tty = bool(sys.__stdout__ and sys.__stdout__.isatty())
    if wanted == "off" or not tty or (wanted == "auto" and not may_have_graphics(env)):
        return None
    from textual_image import widget  # queries the terminal: only here, only now

    if wanted == "kitty":
        _chosen = ("kitty", widget.TGPImage)
    elif wanted == "sixel":
        _chosen = ("sixel", widget.SixelImage)
    else:
        from textual_image import renderable

        if renderable.Image is renderable.TGPImage:
            _chosen = ("kitty", widget.TGPImage)
        elif renderable.Image is renderable.SixelImage:
            _chosen = ("sixel", widget.SixelImage)
    return _chosen[0] if _chosen else None


def chosen() -> str | None:
    """The protocol this run draws photos with (None: half blocks)."""
    return _chosen[0] if _chosen else None


def use(name: str | None, widget_class: Any = None) -> None:
    """Set the protocol directly (tests, and a terminal `prepare` already probed)."""
    global _chosen
    _chosen = (name, widget_class) if name and widget_class is not None else None


def widget_for(image: Any, *, id: str | None = None) -> Any:
    """A textual-image widget drawing `image` (a PIL image) through the chosen protocol, or None."""
    if _chosen is None:
        return None
    return _chosen[1](image, id=id)
