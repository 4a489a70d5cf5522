"""Fixtures shared by tests/unit: the workflow template sites, built once per test process.

`_wf_template` (a protocol, users of every role) and `_wf_sentinel_template` (WUH01-001 enrolled,
sentinel gate open) are defined in wf_support.py beside the helpers that drive them. They are
registered here, not imported into each test module: a session fixture imported into a module is a
fixture of that module, so each importing file built the templates again. Test modules copy them per
test (`wf_support._copy_site`).

Likewise `pg_server` (one throwaway PostgreSQL server per test process) and `hub_engine` (the hub
suite on both engines), defined in hub_engines.py.
"""

from __future__ import annotations

# PASSWORD: `from conftest import PASSWORD` in a unit test module finds this conftest.
import pytest
from hub_engines import hub_engine, module_hub_engine, not_yet_report, pg_server
from site_users import ROLE_USERS
from wf_support import PASSWORD, _wf_sentinel_template, _wf_template

__all__ = [
    "PASSWORD",
    "ROLE_USERS",
    "_wf_sentinel_template",
    "_wf_template",
    "hub_engine",
    "module_hub_engine",
    "pg_server",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """`@pytest.mark.pg_not_yet(command)`: hub_engines.not_yet_report."""
    outcome = yield
    not_yet_report(item, call, outcome.get_result())
