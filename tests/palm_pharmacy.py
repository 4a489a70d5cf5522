"""Test protocols: PALM variants for the cold chain's preparation at the pharmacy and amended products.

`pharmacy_source()`: PALM whose ZMapp is thawed and diluted at the pharmacy
(`at = "pharmacy"`), the dilution asking the diluted volume (mL, 50-500), the
diluent (a choice) and an optional note; its use-within is the shortest step's,
8 h. The other products keep their steps at the bedside, as shipped. The
published PALM protocol does not say where ZMapp was prepared; this variant
exists for the tests only and is never shipped.

`amended_source(...)`: PALM 1.1, the shipped 1.0 plus a product a later
amendment adds (a 2-8 °C remdesivir solution, `RDVSOL`, beside the 2-30 °C
lyophilized powder), for the readings already imported before it.
"""

from __future__ import annotations

from wardcrf.engine import model

SHIPPED_ZMAPP = """preparation = [
  { code = "thaw", label = "Thaw the vials", within = "24h" },                            # [U]
  { code = "dilute", label = "Dilute in normal saline for infusion", within = "8h" },    # [U]
]
kit = { use = "administration" }
"""

PHARMACY_ZMAPP = """kit = { use = "administration" }

[[products.preparation]]
code = "thaw"
label = "Thaw the vials"
at = "pharmacy"
within = "24h"

[[products.preparation]]
code = "dilute"
label = "Dilute in normal saline for infusion"
at = "pharmacy"
within = "8h"

[products.preparation.fields.volume_ml]
type = "number"
unit = "mL"
hard = [50, 500]
label = { en = "Diluted volume", fr = "Volume dilué" }

[products.preparation.fields.diluent]
type = "choice"
label = "Diluent"
choices = [{ code = "saline", label = "Normal saline 0.9%" }, { code = "d5w", label = "Dextrose 5%" }]

[products.preparation.fields.note]
type = "text"
required = false
max_length = 40
label = "Note"
"""

USE_WITHIN_S = 8 * 3600
VALUES = {"volume_ml": "250", "diluent": "saline"}


def pharmacy_source(zmapp: str = PHARMACY_ZMAPP) -> str:
    """PALM with ZMapp's steps replaced by `zmapp` (default: both at the pharmacy, with fields)."""
    source = model.shipped_source("palm.toml")
    assert source.count(SHIPPED_ZMAPP) == 1, "palm.toml's ZMapp steps moved: update tests/palm_pharmacy.py"
    return source.replace(SHIPPED_ZMAPP, zmapp)


def pharmacy_model() -> model.Model:
    return model.parse(pharmacy_source(), "palm-pharmacy.toml")


ADDED_PRODUCT = """

[[products]]
code = "RDVSOL"
name = "remdesivir injection solution"
dosage_form = "INJECTION, SOLUTION"
strength = { value = 100, unit = "mg" }
storage = { min_c = 2, max_c = 8, target_c = 5 }
kit = { use = "administration" }
"""


def amended_source(version: str = "1.1", product: str = ADDED_PRODUCT) -> str:
    """PALM `version`: the shipped 1.0 with `product` added at the end."""
    source = model.shipped_source("palm.toml")
    assert source.count('version = "1.0"') == 1
    return source.replace('version = "1.0"', f'version = "{version}"') + product


def amended_model(version: str = "1.1", product: str = ADDED_PRODUCT) -> model.Model:
    return model.parse(amended_source(version, product), f"palm-{version}.toml")
