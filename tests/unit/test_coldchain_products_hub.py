"""A lot's product at the hub (issue 17): the new `product_code` travels in the lot record, keeps the
record's authority (`wardcrf.authority`: only a role that may record the cold chain), is checked for its
shape before any projector reads it (`wardcrf.eventbodies`), and a lot recorded before products were
told apart still applies, with the protocol's first product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from forge import append_raw
from hub_engines import ledger
from synckit import PASSWORD, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward

from wardcrf import protocol, users
from wardcrf.coldchain import config, services
from wardcrf.errors import Refused
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def _export(w: Site, to: Path) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to).files
    finally:
        s.close()


def _import_all(h: Site, files: list[Path]) -> None:
    s = open_(h)
    try:
        for f in files:
            assert hub.import_file(s, f).outcome.ok
    finally:
        s.close()


def _hub_lots(h: Site) -> dict[str, Any]:
    with ledger(h) as (_s, store):
        return {
            r["lot"]: (r["product_code"], config.product_of_lot(store, r["lot"]).code)
            for r in store.rows("SELECT lot, product_code FROM cc_lots")
        }


LOT = {"product": "vials", "expiry": "2021-03-31", "release_ref": "QP", "quantity": 1}


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, Any]:
    h = make_hub(tmp_path)
    w = make_ward(tmp_path, "lap1", "WUH01")
    s = open_(w)
    try:
        users.add_user(s, "pharmacist", "Pat Pharm", "pharmacist", PASSWORD)
    finally:
        s.close()
    connect(w, h)
    return {"hub": h, "ward": w, "root": tmp_path}


def test_a_lot_with_its_product_code_and_one_without_both_apply_at_the_hub(pair) -> None:
    h, w, root = pair["hub"], pair["ward"], pair["root"]
    s = open_(w, "pharmacist")
    try:
        services.add_lot(
            s, "NEW", product="haMSC-Exos", expiry="2021-03-31", release_ref="QP", kits=["K1"], quantity=1
        )
    finally:
        s.close()
    append_raw(
        w,
        "record.submitted",
        {
            "form": services.FORM_LOT,
            "data": {"lot": "CODED", "kits": ["K2"], "product_code": "haMSC-Exos", **LOT},
        },
        subject="lot:CODED",
        user="pharmacist",
        role="pharmacist",
    )
    _import_all(h, _export(w, root / "b1"))
    # A one-product protocol's lot records no code (as before): the protocol's first product. Its code:
    # format 1 names the product by its name; MEXCOVID 1.0 run on its format-2 file, by the declared code
    # (a lot a format-1 ward coded by the name is read as that product: the name is the same).
    s = open_(h, "admin")
    try:
        code = "HAMSC_EXOS" if protocol.active(s.store).engine is not None else "haMSC-Exos"
    finally:
        s.close()
    assert _hub_lots(h) == {"NEW": (None, code), "CODED": ("haMSC-Exos", code)}


@pytest.mark.parametrize(
    ("role", "code", "words"),
    [
        ("auditor", "haMSC-Exos", r"record\.submitted"),  # a role that may not record the cold chain
        ("pharmacist", "\x1b[2J", r"product_code"),  # control characters where a product code goes
        ("pharmacist", "P" * 201, r"product_code"),
    ],
)
def test_a_forged_lot_record_is_refused_whole_at_the_hub(pair, role, code, words) -> None:
    h, w, root = pair["hub"], pair["ward"], pair["root"]
    append_raw(
        w,
        "record.submitted",
        {"form": services.FORM_LOT, "data": {"lot": "BAD", "kits": ["K9"], "product_code": code, **LOT}},
        subject="lot:BAD",
        user="pharmacist",
        role=role,
    )
    with pytest.raises(Refused, match=words):
        _import_all(h, _export(w, root / "forged"))
    assert _hub_lots(h) == {}
