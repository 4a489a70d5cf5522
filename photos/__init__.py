"""Photo evidence (installed as `wardcrf.photos`): import, validate, store, verify, view.

Entry points live in `wardcrf.photos.api`; importing this package is cheap
(no Pillow, no Textual) so the TUI and the core can import it at start-up.
"""
