"""wardcrf: an offline, terminal-first electronic case report form.

The package root stays import-light on purpose: the TUI's start-up path
imports it, so nothing heavy (crypto of bundles, PDF, SciPy) is pulled in here.
"""

__version__ = "0.1.0"
