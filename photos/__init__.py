"""Photo evidence (installed as `wardcrf.photos`): import, validate, store, verify, view.

One module per job (catalog, importing, tray, capture, references, originals,
viewing, verify, audit; `feature` registers it); importing this package is cheap
(no Pillow, no Textual) so the TUI and the core can import it at start-up.
"""
