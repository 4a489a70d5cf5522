"""Ward TUI screens (installed as ``wardcrf.screens``). Imported only when the app opens."""
