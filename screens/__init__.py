"""wardcrf's terminal screens (Textual). Imported only when the TUI starts.

`wardcrf.screens.app.make_app` builds the app; the core (`wardcrf`) never
imports this package.
"""
