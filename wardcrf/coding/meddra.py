"""MedDRA's ASCII distribution (MSSO, "MedAscii" folder), read into one row per LLT.

Files read (``$``-delimited, every field followed by ``$``; field order as
in MSSO's *Distribution File Format* document):

``meddra_release.asc``  ``version$language$...``
``llt.asc``  ``llt_code$llt_name$pt_code$whoart$harts$costart$icd9$icd9cm$icd10$llt_currency$jart$``
``mdhier.asc``  ``pt_code$hlt_code$hlgt_code$soc_code$pt_name$hlt_name$hlgt_name$soc_name$soc_abbrev$null$pt_soc_code$primary_soc_fg$``

Each LLT is stored with its PT and the PT's *primary* path (HLT, HLGT,
SOC: the ``mdhier.asc`` row flagged ``primary_soc_fg = Y``), which is what
SDTM's AEDECOD/AEBODSYS and their codes take. A PT without exactly one
primary path, an LLT naming an unknown PT, a code that is not eight digits,
a duplicate code or a name with control characters refuses the load.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import DictionaryFileError, DistributionFile, FileInfo, check_text, dollar_fields, find

NAME = "MedDRA"
_CODE = re.compile(r"^\d{8}$")
MAX_NAME = 100  # MedDRA term names are at most 100 characters


@dataclass(frozen=True)
class Path5:
    """A PT's primary path up the hierarchy."""

    pt_code: int
    pt_name: str
    hlt_code: int
    hlt_name: str
    hlgt_code: int
    hlgt_name: str
    soc_code: int
    soc_name: str
    soc_abbrev: str


@dataclass(frozen=True)
class LLT:
    code: int
    name: str
    current: bool
    pt: Path5

    def codes(self) -> dict[str, Any]:
        """The coding an event records: every level's code and name."""
        p = self.pt
        return {
            "llt_code": self.code,
            "llt_name": self.name,
            "pt_code": p.pt_code,
            "pt_name": p.pt_name,
            "hlt_code": p.hlt_code,
            "hlt_name": p.hlt_name,
            "hlgt_code": p.hlgt_code,
            "hlgt_name": p.hlgt_name,
            "soc_code": p.soc_code,
            "soc_name": p.soc_name,
            "soc_abbrev": p.soc_abbrev,
        }


@dataclass
class Distribution:
    version: str
    language: str
    files: list[FileInfo]
    llts: list[LLT]


def _code(text: str, file: str, n: int, what: str) -> int:
    if not _CODE.match(text):
        raise DictionaryFileError(file, f"{what} {text[:20]!r} is not an eight-digit MedDRA code", n)
    return int(text)


def _name(text: str, file: str, n: int, what: str) -> str:
    text = check_text(text.strip(), file, n, what)
    if not text:
        raise DictionaryFileError(file, f"{what} is empty", n)
    if len(text) > MAX_NAME:
        raise DictionaryFileError(file, f"{what} is {len(text)} characters (MedDRA allows {MAX_NAME})", n)
    return text


def _release(path: Path) -> tuple[str, str, FileInfo]:
    f = DistributionFile(path, max_bytes=4096)
    lines = [t for _n, t in f if t.strip()]
    if not lines:
        raise DictionaryFileError(f.name, "empty (expected version$language$)")
    parts = dollar_fields(lines[0], f.name, 1, 2)
    version = check_text(parts[0].strip(), f.name, 1, "version")
    if not re.match(r"^\d{1,3}\.\d{1,2}$", version):
        raise DictionaryFileError(f.name, f"version {version[:20]!r} is not like 27.0", 1)
    language = _name(parts[1], f.name, 1, "language")
    return version, language, f.info


def _hierarchy(path: Path) -> tuple[dict[int, Path5], FileInfo]:
    f = DistributionFile(path)
    primary: dict[int, Path5] = {}
    seen: set[tuple[int, int]] = set()
    for n, line in f:
        if not line.strip():
            continue
        p = dollar_fields(line, f.name, n, 12)
        pt = _code(p[0], f.name, n, "pt_code")
        hlt = _code(p[1], f.name, n, "hlt_code")
        if (pt, hlt) in seen:
            raise DictionaryFileError(f.name, f"PT {pt} under HLT {hlt} is listed twice", n)
        seen.add((pt, hlt))
        flag = p[11].strip().upper()
        if flag not in ("Y", "N"):
            raise DictionaryFileError(f.name, f"primary_soc_fg is {p[11][:5]!r}, expected Y or N", n)
        if flag != "Y":
            continue
        if pt in primary:
            raise DictionaryFileError(f.name, f"PT {pt} has more than one primary path", n)
        primary[pt] = Path5(
            pt,
            _name(p[4], f.name, n, "pt_name"),
            hlt,
            _name(p[5], f.name, n, "hlt_name"),
            _code(p[2], f.name, n, "hlgt_code"),
            _name(p[6], f.name, n, "hlgt_name"),
            _code(p[3], f.name, n, "soc_code"),
            _name(p[7], f.name, n, "soc_name"),
            check_text(p[8].strip(), f.name, n, "soc_abbrev")[:10],
        )
    if not primary:
        raise DictionaryFileError(f.name, "no primary paths (primary_soc_fg = Y) found")
    return primary, f.info


def _llts(path: Path, primary: dict[int, Path5]) -> tuple[list[LLT], FileInfo]:
    f = DistributionFile(path)
    out: list[LLT] = []
    seen: set[int] = set()
    for n, line in f:
        if not line.strip():
            continue
        p = dollar_fields(line, f.name, n, 10)
        code = _code(p[0], f.name, n, "llt_code")
        if code in seen:
            raise DictionaryFileError(f.name, f"LLT {code} is listed twice", n)
        seen.add(code)
        pt = _code(p[2], f.name, n, "pt_code")
        path5 = primary.get(pt)
        if path5 is None:
            raise DictionaryFileError(
                f.name, f"LLT {code} names PT {pt}, which has no primary path in mdhier.asc", n
            )
        currency = p[9].strip().upper()
        if currency not in ("Y", "N"):
            raise DictionaryFileError(f.name, f"llt_currency is {p[9][:5]!r}, expected Y or N", n)
        out.append(LLT(code, _name(p[1], f.name, n, "llt_name"), currency == "Y", path5))
    if not out:
        raise DictionaryFileError(f.name, "no terms")
    return out, f.info


def read(directory: Path) -> Distribution:
    """Read and check a MedDRA ASCII distribution folder (refuses the whole folder on any problem)."""
    directory = Path(directory)
    release, llt_file, hier_file = (
        find(directory, "meddra_release.asc"),
        find(directory, "llt.asc"),
        find(directory, "mdhier.asc"),
    )
    assert release and llt_file and hier_file  # find() raises when required files are missing
    version, language, rel_info = _release(release)
    primary, hier_info = _hierarchy(hier_file)
    llts, llt_info = _llts(llt_file, primary)
    return Distribution(version, language, [rel_info, llt_info, hier_info], llts)


def rows(dist: Distribution) -> Iterator[tuple[Any, ...]]:
    """Rows for the `coding_meddra` table."""
    for t in dist.llts:
        p = t.pt
        yield (
            dist.version,
            t.code,
            t.name,
            int(t.current),
            p.pt_code,
            p.pt_name,
            p.hlt_code,
            p.hlt_name,
            p.hlgt_code,
            p.hlgt_name,
            p.soc_code,
            p.soc_name,
            p.soc_abbrev,
        )
