"""Usage errors from argument parsing are one line on stderr, exit 2 (found in QA: a boxed panel)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("user", "deactivate", "clinician"), "Missing option '--reason'"),
        (("submitt", "vitals"), "No such command 'submitt'"),
        (("db", "backup", "--too", "/tmp"), "No such option: --too"),
        (("participant", "show"), "Missing argument"),
    ],
)
def test_usage_errors_are_one_line_naming_the_help(cli, args, needle):
    r = cli(*args)
    assert r.code == 2
    assert r.out == ""
    assert r.err.count("\n") == 1, r.err
    assert r.err.startswith("wardcrf: error: ") and needle in r.err
    assert "--help" in r.err


def test_help_and_version_still_exit_0(cli):
    assert cli("--version").code == 0
    r = cli("user", "--help")
    assert r.code == 0 and "deactivate" in r.out
    r = cli("user")  # no_args_is_help: the help, and no empty error line
    assert "deactivate" in r.out and "error" not in r.err
