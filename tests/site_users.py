"""Who the test site has, and their password: one definition for every conftest and helper.

tests/conftest.py creates these users; tests/unit/conftest.py re-exports them, because
`from conftest import ...` in a unit test module finds the nearest conftest (tests/unit's).
"""

PASSWORD = "test-password-1"
ROLE_USERS = ("clinician", "pharmacist", "investigator", "dsmg", "coordinator", "auditor")
