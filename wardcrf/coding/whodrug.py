"""WHODrug Global, B3 format (UMC), read into one row per drug code.

Files read (fixed width; positions 1-based, as in UMC's B3 file
description; the layout is this module's `LAYOUT`, one place to correct):

``DD.txt``   drug names: drug record number (1-6), sequence number 1 (7-8),
             sequence number 2 (9-11), ..., drug name (32-1531)
``DDA.txt``  ATC codes of a drug: drug record number (1-6), seq 1 (7-8),
             seq 2 (9-11), ATC code (13-19), official flag (23)
``INA.txt``  ATC texts: ATC code (1-7), level (8), text (9-118)

The drug code is record number + seq 1 + seq 2 (11 characters). The
*preferred name* SDTM puts in CMDECOD is the name of the record with the
same record number and sequence number 1 and sequence number 2 ``001``
(UMC's B3 guidance); when a release lacks that record the coded name is
used and the coding says so. WHODrug files state no version inside: the
version (e.g. ``Global B3 March 1, 2024``) is given when loading.

Every line is checked (digits where digits belong, a non-empty name, no
control characters); any problem refuses the whole load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import DictionaryFileError, DistributionFile, FileInfo, check_text, find

NAME = "WHODrug"
LAYOUT: dict[str, dict[str, tuple[int, int]]] = {
    # field -> (first, last) character, 1-based inclusive
    "DD.txt": {"drecno": (1, 6), "seq1": (7, 8), "seq2": (9, 11), "name": (32, 1531)},
    "DDA.txt": {"drecno": (1, 6), "seq1": (7, 8), "seq2": (9, 11), "atc": (13, 19), "official": (23, 23)},
    "INA.txt": {"atc": (1, 7), "level": (8, 8), "text": (9, 118)},
}
_DIGITS = {2: re.compile(r"^\d{2}$"), 6: re.compile(r"^\d{6}$")}
_SEQ2 = re.compile(r"^[0-9A-Z]{3}$")
_ATC = re.compile(r"^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$")


@dataclass
class Drug:
    code: str  # record number + seq1 + seq2
    name: str
    preferred_code: str
    preferred_name: str
    atc: list[tuple[str, str]] = field(default_factory=list)  # (code, text)

    def codes(self, atc: str | None = None) -> dict[str, Any]:
        """The coding an event records (the chosen ATC class, or the only one)."""
        chosen = next(((c, t) for c, t in self.atc if c == atc), None) if atc else None
        if chosen is None and len(self.atc) == 1:
            chosen = self.atc[0]
        return {
            "drug_code": self.code,
            "drug_name": self.name,
            "preferred_code": self.preferred_code,
            "preferred_name": self.preferred_name,
            "atc_code": chosen[0] if chosen else "",
            "atc_text": chosen[1] if chosen else "",
        }


@dataclass
class Distribution:
    version: str
    files: list[FileInfo]
    drugs: list[Drug]


def _cut(line: str, file: str, key: str) -> str:
    first, last = LAYOUT[file][key]
    return line[first - 1 : last].strip()


def _read_dd(path: Path) -> tuple[dict[str, str], FileInfo]:
    f = DistributionFile(path)
    names: dict[str, str] = {}
    for n, line in f:
        if not line.strip():
            continue
        drecno, seq1, seq2 = (_cut(line, "DD.txt", k) for k in ("drecno", "seq1", "seq2"))
        if not (_DIGITS[6].match(drecno) and _DIGITS[2].match(seq1) and _SEQ2.match(seq2)):
            raise DictionaryFileError(
                f.name, "drug code (positions 1-11) is not a record number, sequence 1 and sequence 2", n
            )
        name = check_text(_cut(line, "DD.txt", "name"), f.name, n, "drug name")
        if not name:
            raise DictionaryFileError(f.name, "drug name (positions 32-1531) is empty", n)
        code = drecno + seq1 + seq2
        if code in names:
            raise DictionaryFileError(f.name, f"drug code {code} is listed twice", n)
        names[code] = name
    if not names:
        raise DictionaryFileError(f.name, "no drug names")
    return names, f.info


def _read_ina(path: Path | None) -> tuple[dict[str, str], FileInfo | None]:
    if path is None:
        return {}, None
    f = DistributionFile(path)
    texts: dict[str, str] = {}
    for n, line in f:
        if not line.strip():
            continue
        atc = _cut(line, "INA.txt", "atc")
        if not _ATC.match(atc):
            raise DictionaryFileError(f.name, f"ATC code {atc[:8]!r} is not an ATC code", n)
        texts[atc] = check_text(_cut(line, "INA.txt", "text"), f.name, n, "ATC text")
    return texts, f.info


def _read_dda(
    path: Path | None, texts: dict[str, str]
) -> tuple[dict[str, list[tuple[str, str]]], FileInfo | None]:
    if path is None:
        return {}, None
    f = DistributionFile(path)
    out: dict[str, list[tuple[str, str]]] = {}
    for n, line in f:
        if not line.strip():
            continue
        drecno, seq1, seq2, atc = (_cut(line, "DDA.txt", k) for k in ("drecno", "seq1", "seq2", "atc"))
        if not (_DIGITS[6].match(drecno) and _DIGITS[2].match(seq1) and _SEQ2.match(seq2)):
            raise DictionaryFileError(f.name, "drug code (positions 1-11) is malformed", n)
        if not _ATC.match(atc):
            raise DictionaryFileError(f.name, f"ATC code {atc[:8]!r} is not an ATC code", n)
        entry = (atc, texts.get(atc, ""))
        lst = out.setdefault(drecno + seq1 + seq2, [])
        if entry not in lst:
            lst.append(entry)
    return out, f.info


def read(directory: Path, version: str) -> Distribution:
    """Read and check a WHODrug B3 folder (DD.txt required; DDA.txt and INA.txt when present)."""
    directory = Path(directory)
    dd = find(directory, "DD.txt")
    assert dd is not None
    names, dd_info = _read_dd(dd)
    texts, ina_info = _read_ina(find(directory, "INA.txt", required=False))
    atcs, dda_info = _read_dda(find(directory, "DDA.txt", required=False), texts)
    drugs = []
    for code, name in names.items():
        pref = code[:8] + "001"
        drugs.append(
            Drug(
                code,
                name,
                pref if pref in names else code,
                names.get(pref, name),
                atcs.get(code) or atcs.get(pref) or [],
            )
        )
    files = [i for i in (dd_info, dda_info, ina_info) if i is not None]
    return Distribution(version, files, drugs)


def rows(dist: Distribution) -> Iterator[tuple[Any, ...]]:
    """Rows for the `coding_whodrug` table (ATC classes as a JSON list of [code, text])."""
    for d in dist.drugs:
        yield (
            dist.version,
            d.code,
            d.name,
            d.preferred_code,
            d.preferred_name,
            json.dumps([[c, t] for c, t in d.atc], ensure_ascii=False),
        )
