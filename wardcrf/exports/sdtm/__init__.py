"""SDTM submission package: SDTMIG 3.4 datasets as XPT v5 and Dataset-JSON 1.1, with Define-XML 2.1.

`export_sdtm` writes, into a new directory::

    <domain>.xpt        SAS transport v5, one per dataset (the submission files)
    <domain>.json       the same dataset as Dataset-JSON 1.1
    csv/<domain>.csv    the same dataset as CSV (for people and spreadsheets)
    define.xml          Define-XML 2.1: datasets, variables, codelists, origins
    transliterations.csv  every value changed to fit SAS transport v5 (conform.py)
    SHA256SUMS

Modules: `metadata` (what each dataset holds), `design` (arms, epochs,
visits, the subject timeline), `build` (subject datasets), `ae` (the AE
mapping and its coding lookup), `trial` (TS, TA, TE, TV, TI), `conform`
(ASCII and length rules), `files` (XPT, JSON, CSV), `define`, `check`
(`wardcrf export sdtm --check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import cdisc
from ...clock import now_utc
from ...engine import protocol_v1
from ..csv_export import prepare_dir, write_checksums
from ..dataset import Dataset
from ..progress import NullProgress, Progress
from . import ae as ae_map
from .build import build
from .conform import Change, conform
from .metadata import ORDER, domain

if TYPE_CHECKING:
    from ...engine.model import Model


@dataclass
class Package:
    """The datasets of one export, conformed and ready to write or check."""

    study: str
    rows: dict[str, list[dict[str, Any]]]
    changes: list[Change]
    uncoded_ae: int
    coded_ae: int
    dictionary_versions: dict[str, list[str]]
    created: datetime
    protocol_version: str
    design_source: str
    extended_terms: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    """Dataset -> the protocol forms its collected values came from (define.xml's def:Origin)."""
    """Codelist -> the protocol's own terms of that extensible CDISC codelist, with their meaning (format 2:
    an administration's `frequency_extended`); define.xml marks them def:ExtendedValue, the check accepts them."""

    @property
    def names(self) -> list[str]:
        """Dataset names with rows, trial design first, each SUPP-- after its parent."""
        out: list[str] = []
        for name in ORDER:
            if self.rows.get(name):
                out.append(name)
            if self.rows.get(f"SUPP{name}"):
                out.append(f"SUPP{name}")
        return out


@dataclass
class SdtmExport:
    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    uncoded_ae: int = 0
    transliterated: list[Change] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out_dir),
            "datasets": self.rows,
            "standards": {
                "SDTM": cdisc.SDTM_VERSION,
                "SDTMIG": cdisc.SDTMIG_VERSION,
                "CT": f"{cdisc.CT_PACKAGE} {cdisc.CT_VERSION}",
                "Define-XML": cdisc.DEFINE_VERSION,
                "Dataset-JSON": cdisc.DATASET_JSON_VERSION,
            },
            "uncoded_ae": self.uncoded_ae,
            "transliterated": len(self.transliterated),
        }


def package(
    ds: Dataset,
    progress: Progress | None = None,
    coding: ae_map.Coding | None = None,
    model: Model | None = None,
) -> Package:
    """Build every dataset (subject, trial design, SUPP--) and make them fit SAS transport v5.

    `model`: the engine's model of the active version, by default the one the
    ward runs (`protocol.run_as`: a format-2 version's own, a format-1
    version's re-encoding); TS, TA, TE, TV and TI come from its declared arms,
    epochs, visits and criteria (engine_design.py), DM's arms from its arms and
    the recorded allocations, EX from its administrations. A stored format-1
    version the engine cannot run has none: its regimen as `engine.protocol_v1`
    reads its `[schedule]`, and the documented default design (design.py).
    """
    progress = progress or NullProgress()
    proto = ds.active_protocol
    coding = coding or ae_map.coding_for(ds.store)
    if model is None:
        model = proto.engine
    from . import engine_design
    from .build import recorded_allocations

    # A stored format-1 version the engine cannot run has no model: its regimen and criteria as the engine
    # reads its [schedule] and [eligibility] (`engine.protocol_v1`), and the documented default design.
    regimen = model if model is not None else protocol_v1.upgrade(proto)
    terms = engine_design.ex_terms(regimen)
    roles = {a.record["form"]: a.record for r in regimen.regimens.values() for a in r.administrations}
    arms = engine_design.design_from_model(model).arms if model is not None else None
    eligibility = regimen.data.get("eligibility", {})
    built = build(ds, progress, coding, arms, recorded_allocations(ds), terms, roles, model, eligibility)
    assert built.design is not None
    created = now_utc()
    rows = dict(built.rows)
    dm = rows.get("DM", [])
    if model is not None:
        rows.update(engine_design.trial_rows(model, dm, created, all_ended=built.ongoing == 0))
    else:
        rows.update(
            engine_design.stored_v1_rows(
                proto, regimen, built.design, dm, created, all_ended=built.ongoing == 0
            )
        )
    changes = conform(rows, proto.id)
    return Package(
        proto.id,
        rows,
        changes,
        built.uncoded_ae,
        built.coded_ae,
        built.dictionary_versions,
        created,
        proto.version,
        built.design.source,
        _extended_terms(model) if model is not None else {},
        built.sources,
    )


def _extended_terms(model: Model) -> dict[str, dict[str, str]]:
    """The sponsor terms a format-2 protocol adds to CDISC's extensible FREQ codelist (C71113)."""
    freq = {
        a.frequency: a.frequency_extended
        for r in model.regimens.values()
        for a in r.administrations
        if a.frequency_extended
    }
    return {"FREQ": freq} if freq else {}


def export_sdtm(
    ds: Dataset,
    out: Path,
    progress: Progress | None = None,
    coding: ae_map.Coding | None = None,
    model: Model | None = None,
) -> SdtmExport:
    out = prepare_dir(out)
    return write_package(ds, package(ds, progress, coding, model), out)


def write_package(ds: Dataset, pkg: Package, out: Path) -> SdtmExport:
    """Write a built package into `out` (a new or empty directory)."""
    from . import define, files

    out = prepare_dir(out)
    result = SdtmExport(out, uncoded_ae=pkg.uncoded_ae, transliterated=pkg.changes)
    (out / "csv").mkdir()
    written: list[str] = []
    columns = {}
    modified = _last_modified(ds)
    for name in pkg.names:
        meta = domain(name)
        data = pkg.rows[name]
        cols = files.columns_for(meta, data)
        columns[name] = cols
        files.write_xpt(out / f"{name.lower()}.xpt", meta, cols, data)
        doc = files.dataset_json(
            meta,
            cols,
            data,
            study=pkg.study,
            mdv=define.MDV_OID,
            created=pkg.created,
            modified=modified,
            originator=ds.site_row["site"],
        )
        files.write_json(out / f"{name.lower()}.json", doc)
        files.write_csv(out / "csv" / f"{name.lower()}.csv", cols, data)
        written += [f"{name.lower()}.xpt", f"{name.lower()}.json", f"csv/{name.lower()}.csv"]
        result.rows[name] = len(data)
    define.write(out / "define.xml", ds, pkg, columns)
    _write_changes(out / "transliterations.csv", pkg.changes)
    write_checksums(out, [*written, "define.xml", "transliterations.csv"])
    return result


def _last_modified(ds: Dataset) -> str:
    latest = [t for db in ds.logs() if (t := db.scalar("SELECT max(ts) FROM events")) is not None]
    ts = max(latest) if latest else None
    return str(ts).replace("Z", "+00:00") if ts else now_utc().isoformat(timespec="seconds")


def _write_changes(path: Path, changes: list[Change]) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "usubjid", "seq", "variable", "rule", "original", "written"])
        for c in changes:
            w.writerow([c.dataset, c.usubjid, c.seq, c.variable, c.rule, c.original, c.written])
