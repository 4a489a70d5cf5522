"""Whether the features are registered (`features.install`): the guard the core checks before it relies on them.

A leaf module so the lowest layers (`authority`, `eventlog`) can ask without
importing the features they must never depend on.
"""

from __future__ import annotations

_installed = [False]


def mark_installed() -> None:
    """Called by `features.install` once every feature has registered."""
    _installed[0] = True


def require_installed() -> None:
    """Refuse to apply, check or gate anything before the features are registered.

    An event projected with half its projectors, or an audit that skips a
    feature's checks, would be silently wrong. The program's entry point
    installs the features before it opens a site (the command line, the ward
    app's sign-in; `Site.init` and `Site.unlock_key` check here first), so
    reaching this is a bug in the caller: a script, test or entry point that
    did not call `wardcrf.features.install()`.
    """
    if not _installed[0]:
        raise RuntimeError(
            "wardcrf.features.install() was not called: no feature is registered"
            " (the program's entry point calls it once before it opens a site)"
        )
