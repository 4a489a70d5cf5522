"""Medical coding: verbatim AE terms and medications coded with MedDRA and WHODrug.

The dictionaries are licensed: none is shipped. A coder (or admin) loads
the trial's licensed distribution files (`service.load_dictionary`); a coder
codes each verbatim term from the queue (`service.code`), which appends a
`coding.coded` event carrying every code and name, so codings travel in
bundles and read the same on a site that has no dictionary.

Exports use one lookup, `CodingIndex` (`model`): ``CodingIndex.load(store)
.get(record_id, field, verbatim=...)`` returns the valid coding or None
(uncoded, or the verbatim changed since), ``Coding.sdtm_variables("AE")``
the SDTM variables, ``versions_in_use()`` the dictionary versions for TS.
"""

from __future__ import annotations

from .model import (
    CODED_VARIABLES,
    DICTIONARIES,
    MEDDRA,
    WHODRUG,
    Coding,
    CodingIndex,
    Uncoded,
    coded_fields,
    uncoded,
)

__all__ = [
    "CODED_VARIABLES",
    "DICTIONARIES",
    "MEDDRA",
    "WHODRUG",
    "Coding",
    "CodingIndex",
    "Uncoded",
    "coded_fields",
    "uncoded",
]
