"""A sync bundle carries the files its events cite by asking the extractors features register.

`sync/bundle.py` is pure and names no feature's events (#16): the photos
feature says ``photo.imported`` carries a photo, the cold chain says its
logger imports and shipment receipts cite logger files (`wardcrf.carried`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from synckit import first_manifest
from test_sync_bundle import PNG, _chain
from wardcrf.sync import bundle
from wardcrf.sync.bundle import Signer

from wardcrf import authority, canonical, carried, devicekeys, features
from wardcrf.errors import Refused

LOG = b"time,temp\n2026-01-01T00:00Z,4.1\n"


@pytest.fixture(autouse=True)
def installed(monkeypatch):
    """The real features, and a private copy of the extractor table a test may add to."""
    features.install()
    monkeypatch.setattr(carried, "_extractors", list(carried._extractors))


def _line(prev: str, seq: int, body: dict) -> str:
    return canonical.event_line(
        prev,
        {
            "amends": None,
            "body": body,
            "device": "DEV00001",
            "hlc": f"{seq:015d}.00000",
            "id": f"DEV00001-{seq}",
            "protocol": None,
            "reason": None,
            "role": "admin",
            "seq": seq,
            "site": "WUH01",
            "subject": "site:WUH01",
            "ts": "2026-01-01T00:00:00.000Z",
            "type": "qa.note",  # a scratch type no feature owns (tests/scratch_events.py)
            "tz": "+08:00",
            "user": "admin",
            "zone": "Asia/Shanghai",
        },
    )


def _cites(body: dict) -> dict[str, str]:
    att = body.get("attachment")
    return {att["sha256"]: att["name"]} if isinstance(att, dict) else {}


NEW_FEATURE = carried.Extractor(carried.FILE, carried.type_marker("qa.note"), _cites)


def test_a_new_features_extractor_is_asked_for_the_files_its_events_cite() -> None:
    digest = bundle.sha256(LOG)
    line = _line(canonical.GENESIS, 1, {"attachment": {"sha256": digest, "name": "fridge.CSV"}})
    assert bundle.evidence_refs([line]) == {}  # no feature has said this event cites a file
    features.Registry().carried_file(NEW_FEATURE)
    assert bundle.evidence_refs([line]) == {digest: "fridge.CSV"}
    features.Registry().carried_file(NEW_FEATURE)  # registering twice is a no-op
    assert carried.extractors(carried.FILE).count(NEW_FEATURE) == 1
    # A body of the wrong shape or a digest that is not 64 hex is not a citation.
    bad = _line(canonical.GENESIS, 1, {"attachment": {"sha256": "sha256:" + digest, "name": "x"}})
    assert bundle.evidence_refs([bad, _line(canonical.GENESIS, 1, {"attachment": "x"})]) == {}


def test_a_new_features_photo_extractor_is_asked_too() -> None:
    digest = bundle.sha256(PNG)
    line = _line(canonical.GENESIS, 1, {"attachment": {"sha256": digest, "name": ""}})
    assert bundle.photo_refs([line]) == []
    features.Registry().carried_file(dataclasses.replace(NEW_FEATURE, kind=carried.PHOTO))
    assert bundle.photo_refs([line]) == [digest]


def _sealed(lines: list[str], evidence: dict[str, tuple[str, bytes]]):
    keys, hub = devicekeys.generate("DEV00001"), devicekeys.generate("HUB00001")
    manifest = first_manifest(
        device="DEV00001",
        key_id=keys.key_id,
        recipients=[hub.age_recipient],
        count=len(lines),
        chain_last=canonical.line_hash(lines[-1]),
        evidence=tuple(evidence),
    )
    _name, cipher, sig = bundle.seal(manifest, lines, {}, keys.sign_secret, evidence)
    signer = Signer("DEV00001", "WUH01", keys.sign_public, keys.key_id)

    def verify():
        return bundle.verify(cipher, sig, lambda k: signer if k == keys.key_id else None, [hub.age_identity])

    return verify


def test_verify_requires_exactly_the_files_a_registered_extractor_finds() -> None:
    digest = bundle.sha256(LOG)
    line = _line(canonical.GENESIS, 1, {"attachment": {"sha256": digest, "name": "fridge.csv"}})
    verify = _sealed([line], {digest: ("csv", LOG)})
    # Without the feature's extractor the file is cited by nothing: refused, as an extra member is.
    with pytest.raises(Refused, match="not cited by any event"):
        verify()
    features.Registry().carried_file(NEW_FEATURE)
    v = verify()
    member = f"evidence/{digest}.csv"
    assert v.evidence == {digest: ("fridge.csv", member)}
    assert dict(v.parts()) == {member: LOG}  # the bytes, read again from the verified bundle
    # And the cited file must travel: a bundle without it is refused.
    with pytest.raises(Refused, match="which the bundle lacks"):
        _sealed([line], {})()


def test_the_features_register_the_extractors_for_their_own_events() -> None:
    photo = {x.marker for x in carried.extractors(carried.PHOTO)}
    files = {x.marker for x in carried.extractors(carried.FILE)}
    assert photo == {carried.type_marker("photo.imported")}
    assert files == {carried.type_marker("coldchain.logger_imported"), carried.form_marker("coldchain.receipt")}
    logger = _chain("DEV00001", 1)[0]  # an ordinary event cites nothing
    assert bundle.evidence_refs([logger]) == {} and bundle.photo_refs([logger]) == []


def test_bundle_py_names_no_features_events_or_forms() -> None:
    source = Path(bundle.__file__).read_text(encoding="utf-8")
    names = set(authority.EVENT_TYPES) | set(authority._FORM_ACTIONS)
    named = sorted(n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w.])", source))
    assert named == [], f"sync/bundle.py names {named}: register a carried.Extractor from the feature instead"
    assert "coldchain" not in source and "photo.imported" not in source
