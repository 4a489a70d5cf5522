"""The signed-in session as the screens see it.

Screens never run SQL: they call domain services (`wardcrf.audit`,
`wardcrf.users`, the workflow services...) through `Ward.call`, which passes
the session and serialises access to the one database connection, because
thread workers may run concurrently while the UI thread also reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from wardcrf import roles
from wardcrf.clock import now_utc, zone
from wardcrf.site import Session, Site

T = TypeVar("T")


class Ward:
    """One user's session on one site, shared by every screen of the app."""

    def __init__(self, site: Site, session: Session) -> None:
        self.site = site
        self.session = session
        self._lock = threading.RLock()

    @property
    def user(self) -> str:
        return self.session.user

    @property
    def role(self) -> str:
        return self.session.role

    @property
    def full_name(self) -> str:
        return self.session.full_name

    def can(self, action: str) -> bool:
        """Whether the role may do `action` (the services enforce it anyway)."""
        return roles.allowed(self.session.role, action)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a domain service with this session, one call at a time."""
        with self._lock:
            return fn(self.session, *args, **kwargs)

    def local_now(self) -> datetime:
        return now_utc().astimezone(zone(self.session.ctx.zone))

    def close(self) -> None:
        with self._lock:
            self.session.close()


def sign_in(site: Site, user: str, password: str) -> Ward:
    """Sign `user` in on `site` (`Site.unlock`): the ward app's one way to a new session.

    The ward app's composition root: the features are installed here, before
    the first database is opened (`features.install`, once per process; a
    site refuses to open its database before). They load in the sign-in
    worker, not when the app starts: they are most of the package, and the
    sign-in screen paints before they load (`wardcrf.entry`).
    """
    from wardcrf import features  # imported by the sign-in worker, after the first paint (above)

    features.install()
    return Ward(site, site.unlock(user, password))
