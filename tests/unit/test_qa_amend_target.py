"""Amending the wrong event says which one to name (found in QA: "not a record that can be amended")."""

from __future__ import annotations

import pytest

from wardcrf import records, users
from wardcrf.errors import Refused


@pytest.fixture
def note(admin):
    # a plain record through the core API (no protocol form needed)
    return records.submit(admin, "note", {"text": "first"}, subject="site:x")


def test_amending_the_original_record_works(session_for, note):
    am = records.amend(session_for("clinician"), note.id, {"text": "second"}, "typo")
    assert am.amends == note.id


def test_amending_an_amendment_names_the_original(session_for, note):
    clinician = session_for("clinician")
    am = records.amend(clinician, note.id, {"text": "second"}, "typo")
    with pytest.raises(
        Refused, match=rf"{am.id} is an amendment of {note.id}; amend the original record {note.id}"
    ):
        records.amend(clinician, am.id, {"text": "third"}, "again")


def test_amending_a_non_record_event_says_only_records_can_be(admin):
    ev = users.add_user(admin, "bob", "Bob", "clinician", "bob-password-1")
    with pytest.raises(
        Refused, match=r"is a user.added event, not a form record; only records can be amended"
    ):
        records.amend(admin, ev.id, {"role": "admin"}, "promote")
