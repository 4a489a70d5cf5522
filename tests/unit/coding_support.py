"""Tiny synthetic dictionaries in the real distribution formats (no licensed content).

MedDRA: ``$``-delimited MedAscii files (meddra_release.asc, llt.asc,
mdhier.asc, pt.asc) as MSSO lays them out. WHODrug: B3 fixed-width DD.txt,
DDA.txt and INA.txt. The terms are a handful of well-known names with codes
shaped like the real ones; the point is the format, not the content.
"""

from __future__ import annotations

from pathlib import Path

# SOC, HLGT, HLT, PT: (code, name)
GENRL = (10018065, "General disorders and administration site conditions", "Genrl")
RESP = (10038738, "Respiratory, thoracic and mediastinal disorders", "Resp")
VASC = (10047065, "Vascular disorders", "Vasc")

# pt_code, pt_name, [(hlt_code, hlt_name, hlgt_code, hlgt_name, soc, primary)]
HIERARCHY = [
    (
        10037660,
        "Pyrexia",
        [(10016286, "Febrile disorders", 10014982, "Body temperature conditions", GENRL, "Y")],
    ),
    (
        10011224,
        "Cough",
        [(10011233, "Coughing and associated symptoms", 10038716, "Respiratory disorders NEC", RESP, "Y")],
    ),
    (
        10037377,
        "Pulmonary embolism",
        [
            (
                10037421,
                "Pulmonary thrombotic and embolic conditions",
                10037454,
                "Pulmonary vascular disorders",
                RESP,
                "Y",
            ),
            (10014523, "Embolism and thrombosis NEC", 10014529, "Embolism and thrombosis", VASC, "N"),
        ],
    ),
    (
        10012735,
        "Diarrhoea",
        [
            (
                10012736,
                "Diarrhoea (excl infective)",
                10017969,
                "Gastrointestinal motility and defaecation conditions",
                GENRL,
                "Y",
            )
        ],
    ),
]
# llt_code, llt_name, pt_code, current
LLTS = [
    (10016558, "Fever", 10037660, "Y"),
    (10037660, "Pyrexia", 10037660, "Y"),
    (10016559, "Feverish", 10037660, "N"),
    (10011224, "Cough", 10011224, "Y"),
    (10037377, "Pulmonary embolism", 10037377, "Y"),
    (10012735, "Diarrhoea", 10012735, "Y"),
]


def llt_line(code: int, name: str, pt: int, current: str) -> str:
    return f"{code}${name}${pt}$$$$$$${current}$$"


def mdhier_line(
    pt: int, pt_name: str, hlt: int, hlt_name: str, hlgt: int, hlgt_name: str, soc, primary: str
) -> str:
    return (
        f"{pt}${hlt}${hlgt}${soc[0]}${pt_name}${hlt_name}${hlgt_name}${soc[1]}${soc[2]}$${soc[0]}${primary}$"
    )


def write_meddra(
    folder: Path,
    *,
    version: str = "27.0",
    llts: list[tuple[int, str, int, str]] | None = None,
    extra_llt_lines: list[str] = (),  # type: ignore[assignment]
    extra_hier_lines: list[str] = (),  # type: ignore[assignment]
    encoding: str = "utf-8",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meddra_release.asc").write_text(f"{version}$English$$$$\r\n", encoding="ascii")
    lines = [llt_line(*t) for t in (LLTS if llts is None else llts)] + list(extra_llt_lines)
    (folder / "llt.asc").write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    hier = [
        mdhier_line(pt, name, hlt, hlt_name, hlgt, hlgt_name, soc, primary)
        for pt, name, paths in HIERARCHY
        for hlt, hlt_name, hlgt, hlgt_name, soc, primary in paths
    ] + list(extra_hier_lines)
    (folder / "mdhier.asc").write_bytes(("\r\n".join(hier) + "\r\n").encode(encoding))
    (folder / "pt.asc").write_text(
        "".join(f"{pt}${name}$$" + f"{paths[0][4][0]}$$$$$$$$\r\n" for pt, name, paths in HIERARCHY),
        encoding="ascii",
    )
    return folder


# WHODrug B3: (drecno, seq1, seq2, name); DDA: (drecno, seq1, seq2, atc); INA: (atc, level, text)
DRUGS = [
    ("000200", "01", "001", "PARACETAMOL"),
    ("000200", "01", "008", "PANADOL"),
    ("017617", "01", "001", "LOPINAVIR;RITONAVIR"),
    ("017617", "01", "002", "KALETRA"),
    ("000451", "02", "001", "METHYLPREDNISOLONE SODIUM SUCCINATE"),
    ("000451", "02", "005", "SOLU-MEDROL"),
]
DDA = [
    ("000200", "01", "001", "N02BE"),
    ("017617", "01", "001", "J05AR"),
    ("000451", "02", "001", "H02AB"),
    ("000451", "02", "001", "D07AA"),
]
INA = [
    ("N02BE", "4", "ANILIDES"),
    ("J05AR", "4", "ANTIVIRALS FOR TREATMENT OF HIV INFECTIONS, COMBINATIONS"),
    ("H02AB", "4", "GLUCOCORTICOIDS"),
    ("D07AA", "4", "CORTICOSTEROIDS, WEAK (GROUP I)"),
]


def dd_line(drecno: str, seq1: str, seq2: str, name: str) -> str:
    # 1-6 drecno, 7-8 seq1, 9-11 seq2, 12 check digit, 13 designation, 14-15 source year,
    # 16-20 source, 21-25 company, 26-27 ingredients, 28 salt/ester, 29-31 year/quarter, 32- name
    return f"{drecno}{seq1}{seq2}5T90SRC01CMP0101 241{name}"


def dda_line(drecno: str, seq1: str, seq2: str, atc: str) -> str:
    # 1-11 drug code, 12 check digit, 13-19 ATC (padded), 20-22 year/quarter, 23 official flag
    return f"{drecno}{seq1}{seq2}5{atc:<7}241Y"


def ina_line(atc: str, level: str, text: str) -> str:
    return f"{atc:<7}{level}{text}"


def write_whodrug(folder: Path, *, extra_dd: list[str] = ()) -> Path:  # type: ignore[assignment]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "DD.txt").write_text("\r\n".join([dd_line(*d) for d in DRUGS] + list(extra_dd)) + "\r\n")
    (folder / "DDA.txt").write_text("\r\n".join(dda_line(*d) for d in DDA) + "\r\n")
    (folder / "INA.txt").write_text("\r\n".join(ina_line(*d) for d in INA) + "\r\n")
    return folder
