"""Failed logins persist between attempts and lock the account at the fifth."""

from __future__ import annotations

import pytest

from wardcrf.errors import AuthError
from wardcrf.site import Site

PASSWORD = "test-password-1"


def test_failures_accumulate_across_opens_and_lock(site: Site) -> None:
    for left in (4, 3, 2, 1):
        with pytest.raises(AuthError, match=rf"\({left} attempt\(s\) left"):
            Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
    with pytest.raises(AuthError, match="now locked"):
        Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
    with pytest.raises(AuthError, match="locked after 5 failed logins"):
        Site.open(site.data_dir).unlock("clinician", PASSWORD)


def test_success_clears_failures(site: Site) -> None:
    with pytest.raises(AuthError, match=r"\(4 attempt"):
        Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
    Site.open(site.data_dir).unlock("clinician", PASSWORD).close()
    with pytest.raises(AuthError, match=r"\(4 attempt"):
        Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
