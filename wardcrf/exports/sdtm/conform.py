"""Make the datasets fit SAS transport v5, and list every change made to fit.

SAS XPORT v5 holds ASCII text of at most 200 bytes per value. wardcrf
records free text in any language (a Chinese AE term, a surrogate's name),
so before any file is written the values are made to fit by two rules, the
same for XPT, Dataset-JSON and the CSV copies (so the files agree with each
other and with define.xml):

* Transliteration: a character outside printable ASCII is replaced by its
  `anyascii` transliteration (Unicode -> ASCII, e.g. 咳嗽 -> "KeSou",
  é -> "e"); a control character (tab, newline...) becomes one space;
  a character with no transliteration becomes "?".
* Splitting: a text longer than 200 characters keeps its first 200 (cut at
  the last space before 200 when there is one) and the rest goes to
  SUPP-- as QNAM <VAR>1, <VAR>2... (SDTMIG 3.4 section 4.5.3.2); a SUPP--
  QVAL is split into further SUPP-- records the same way.

Nothing is changed silently: every change is a `Change` (dataset, subject,
sequence, variable, original, written), written to
`transliterations.csv` and summarised on stderr by the CLI. The original
text stays in the CSV and ODM exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anyascii import anyascii

from .metadata import domain as domain_meta

MAX_TEXT = 200


@dataclass(frozen=True)
class Change:
    dataset: str
    usubjid: str
    seq: str
    variable: str
    original: str
    written: str
    rule: str  # "transliterated" or "split to SUPP--"


def to_ascii(text: str) -> str:
    """Printable ASCII for any text, by the rule in the module docstring."""
    if all(" " <= ch <= "~" for ch in text):
        return text
    out = []
    for ch in text:
        if " " <= ch <= "~":
            out.append(ch)
        elif ch < " " or ch == "\x7f" or 0x80 <= ord(ch) < 0xA0:
            out.append(" ")
        else:
            t = anyascii(ch)
            out.append(t if t and all(" " <= c <= "~" for c in t) else "?")
    return "".join(out)


def _split(text: str) -> list[str]:
    parts = []
    while len(text) > MAX_TEXT:
        cut = text.rfind(" ", 1, MAX_TEXT + 1)
        cut = cut if cut > 0 else MAX_TEXT
        parts.append(text[:cut])
        text = text[cut:]
    parts.append(text)
    return parts


def conform(rows: dict[str, list[dict[str, Any]]], study: str) -> list[Change]:
    """Transliterate and split in place; returns every change made."""
    changes: list[Change] = []
    extra_supp: dict[str, list[dict[str, Any]]] = {}
    for name, dataset in rows.items():
        meta = domain_meta(name)
        chars = {v.name for v in meta.variables if v.type == "Char"}
        seqvar = f"{name}SEQ"
        for row in dataset:
            for var in chars:
                value = row.get(var)
                if not isinstance(value, str) or not value:
                    continue
                where = (name, str(row.get("USUBJID", "")), str(row.get(seqvar, row.get("IDVARVAL", ""))))
                fixed = to_ascii(value)
                if fixed != value:
                    changes.append(Change(*where, var, value, fixed, "transliterated"))
                    row[var] = fixed
                if len(fixed) <= MAX_TEXT:
                    continue
                head, *tail = _split(fixed)
                row[var] = head
                changes.append(Change(*where, var, fixed, head, "split to SUPP--"))
                if name.startswith("SUPP"):
                    target = row
                    parent_var = str(row["QNAM"])
                else:
                    target = {
                        "STUDYID": study,
                        "DOMAIN": name,
                        "USUBJID": row.get("USUBJID", ""),
                        seqvar: row.get(seqvar, ""),
                    }
                    parent_var = var
                for i, part in enumerate(tail, 1):
                    qnam = f"{parent_var[:7]}{i}"
                    extra_supp.setdefault(f"SUPP{target.get('RDOMAIN') or name}", []).append(
                        {
                            "STUDYID": study,
                            "RDOMAIN": target.get("RDOMAIN") or name,
                            "USUBJID": target.get("USUBJID", ""),
                            "IDVAR": target.get("IDVAR") or (seqvar if seqvar in target else ""),
                            "IDVARVAL": str(target.get("IDVARVAL") or target.get(seqvar, "")),
                            "QNAM": qnam,
                            "QLABEL": f"{var if not name.startswith('SUPP') else parent_var} continued ({i})"[
                                :40
                            ],
                            "QVAL": part,
                            "QORIG": target.get("QORIG") or "CRF",
                            "QEVAL": "",
                        }
                    )
    for name, extra in extra_supp.items():
        rows.setdefault(name, []).extend(extra)
    return changes
