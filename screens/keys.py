"""The keys ward screens offer alike: Esc goes back, F2 changes the language, R reloads.

Each screen lists them in its BINDINGS where its footer should show them (the
footer keeps a screen's order), but the key, the action and the footer label
are stated once, here: no screen can offer Esc or F2 under another word or
with another effect, nor reload under another word. Screens whose Esc first
asks about unsaved work bind `escape` to their own `back` action instead.
"""

from __future__ import annotations

from textual.binding import Binding

BACK = Binding("escape", "app.pop_screen", "key.back")
"""Esc: back to the screen underneath (nothing on this screen can be lost)."""

LANGUAGE = Binding("f2", "app.next_language", "key.language")
"""F2: the next language of the interface, on every screen."""

RELOAD = Binding("r", "reload", "key.reload")
"""R: read what the screen shows again (its `reload` action). A screen where R is taken
or typed into binds F5 to `reload` itself."""
