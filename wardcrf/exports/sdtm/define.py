"""Define-XML 2.1: the metadata a reviewer reads the datasets with.

Describes every dataset written (ItemGroupDef, with its XPT as def:leaf),
every variable (ItemDef: type, length, label, origin), every codelist
(CDISC CT subsets with the values used; the test codes with their names;
MedDRA as an external dictionary when AEs are coded), value-level metadata
(each test's result in VS, LB and RS; each QNAM's value in SUPP--) and
the derivation of every derived variable (MethodDef). Origins follow
`metadata.Var.origin`; a collected value names its protocol form (the CRF
page: wardcrf's CRF is the protocol file, shipped beside as protocol.toml).
Validated in the tests against the Define-XML 2.1 XSD that odmlib ships.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import __version__, cdisc
from ...protocol import tr
from ..dataset import Dataset
from .files import cell, group_oid, is_integer, item_oid, text_length
from .metadata import Var, domain

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"
XLINK = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MDV_OID = "MDV.SDTM"

CODELIST_NAMES = {
    "NY": "No Yes Response",
    "SEX": "Sex",
    "AGEU": "Age Unit",
    "EPOCH": "Epoch",
    "AESEV": "Severity/Intensity Scale for Adverse Events",
    "ACN": "Action Taken with Study Treatment",
    "OUT": "Outcome of Event",
    "ROUTE": "Route of Administration Response",
    "FREQ": "Frequency",
    "NRIND": "Reference Range Indicator",
    "ND": "Not Done",
    "DSCAT": "Category for Disposition Event",
    "ARMNULRS": "Arm Null Reason",
    "IECAT": "Category for Inclusion/Exclusion",
}
# How each derived variable is computed (MethodDef descriptions; docs/exports.md says the same).
METHODS = {
    "USUBJID": "STUDYID, '-', and the participant id (site code and number).",
    "SEQ": "Sequence of the subject's records in this dataset, in the order they were recorded.",
    "DY": "Study day of --DTC relative to DM.RFSTDTC: date - RFSTDTC + 1 on or after it, date - RFSTDTC before it (no day 0).",
    "EPOCH": "The epoch of the record's visit; otherwise the epoch its date falls in (TA/TE rules: SCREENING before "
    "the first dose, TREATMENT to the end of the day of the last dose, FOLLOW-UP after).",
    "VISITNUM": "The planned visit of the record (BASELINE, DOSE n, POST-TREATMENT from the form, its timepoint or its "
    "dose number); otherwise an unscheduled visit numbered after the last planned visit before it (+0.01 each).",
    "LOBXFL": "Y on each test's last non-missing result dated before the first dose (baseline).",
    "NRIND": "LOW / NORMAL / HIGH against the protocol's reference range for the subject's sex.",
    "STRES": "The original result, in the same (standard) unit.",
    "RF": "From the dose records: first dose start (RFSTDTC, RFXSTDTC), last dose end (RFENDTC, RFXENDTC).",
    "RFPENDTC": "End-of-study disposition date or date of death; else the last date recorded for the subject.",
    "DTHFL": "Y when a death is recorded (disposition DEATH or a fatal adverse event).",
    "AGE": "Completed years from the date of birth to the screening date (computed at entry).",
    "ARM": "ACTARMCD/ACTARM: the arm when at least one dose was given; ARMNRS says why an arm is null.",
    "AESEV": "From the CTCAE grade: 1 MILD, 2 MODERATE, 3-5 SEVERE.",
    "SV": "Earliest and latest date/time of the records belonging to the visit.",
    "TS": "Computed from the data: SSTDTC the earliest informed consent of an enrolled subject, ACTSUB the "
    "number of subjects assigned an arm, DCUTDTC the export date.",
    "VSTPTNUM": "1 for PRE-DOSE, 2 for POST-DOSE.",
    "VSRFTDTC": "Start of the dose the measurement is taken before or after (EXSTDTC).",
    "IDVARVAL": "The parent record's --SEQ.",
}


def _method_key(var: Var) -> str:
    n = var.name
    for key in (
        "USUBJID",
        "EPOCH",
        "VISITNUM",
        "RFPENDTC",
        "DTHFL",
        "AGE",
        "AESEV",
        "VSTPTNUM",
        "VSRFTDTC",
        "IDVARVAL",
    ):
        if n == key:
            return key
    if n in ("VISIT",):
        return "VISITNUM"
    if n.endswith("SEQ"):
        return "SEQ"
    if n.endswith(("DY", "STDY", "ENDY")):
        return "DY"
    if n.endswith("LOBXFL"):
        return "LOBXFL"
    if n.endswith("NRIND"):
        return "NRIND"
    if n.endswith(("STRESC", "STRESN", "STRESU")):
        return "STRES"
    if n.startswith("RF") and n.endswith("DTC"):
        return "RF"
    if n in ("ACTARMCD", "ACTARM", "ARMNRS", "ACTARMUD"):
        return "ARM"
    if n.startswith("SV"):
        return "SV"
    return "TS"


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    tt = ET.SubElement(el, f"{{{ODM}}}TranslatedText", {XML_LANG: "en"})
    tt.text = text
    return el


def _datatype(var: Var, rows: Sequence[dict[str, Any]]) -> str:
    if var.type == "Num":
        return "integer" if is_integer(var) else "float"
    return var.datatype or "text"


def write(path: Path, ds: Dataset, pkg: Any, columns: dict[str, list[Var]]) -> None:
    proto = ds.active_protocol
    root = ET.Element(
        f"{{{ODM}}}ODM",
        {
            "FileType": "Snapshot",
            "FileOID": f"{pkg.study}.SDTM.define",
            "CreationDateTime": pkg.created.isoformat(timespec="seconds"),
            "ODMVersion": "1.3.2",
            "Originator": ds.site_row["site"],
            "SourceSystem": "wardcrf",
            "SourceSystemVersion": __version__,
            f"{{{DEF}}}Context": "Submission",
        },
    )
    study = ET.SubElement(root, f"{{{ODM}}}Study", {"OID": pkg.study})
    gv = ET.SubElement(study, f"{{{ODM}}}GlobalVariables")
    ET.SubElement(gv, f"{{{ODM}}}StudyName").text = pkg.study
    ET.SubElement(gv, f"{{{ODM}}}StudyDescription").text = tr(proto.title)
    ET.SubElement(gv, f"{{{ODM}}}ProtocolName").text = f"{pkg.study} {proto.version}"
    mdv = ET.SubElement(
        study,
        f"{{{ODM}}}MetaDataVersion",
        {
            "OID": MDV_OID,
            "Name": f"{pkg.study} SDTM",
            "Description": f"SDTMIG {cdisc.SDTMIG_VERSION} datasets from protocol {pkg.study} {proto.version}",
            f"{{{DEF}}}DefineVersion": cdisc.DEFINE_VERSION,
        },
    )
    stds = ET.SubElement(mdv, f"{{{DEF}}}Standards")
    ET.SubElement(
        stds,
        f"{{{DEF}}}Standard",
        {
            "OID": "STD.SDTMIG",
            "Name": "SDTMIG",
            "Type": "IG",
            "Version": cdisc.SDTMIG_VERSION,
            "Status": "Final",
        },
    )
    ET.SubElement(
        stds,
        f"{{{DEF}}}Standard",
        {
            "OID": "STD.CT",
            "Name": "CDISC/NCI",
            "Type": "CT",
            "PublishingSet": "SDTM",
            "Version": cdisc.CT_VERSION,
            "Status": "Final",
        },
    )
    sup = ET.SubElement(mdv, f"{{{DEF}}}SupplementalDoc")
    ET.SubElement(sup, f"{{{DEF}}}DocumentRef", {"leafID": "LF.PROTOCOL"})

    names = list(columns)
    vlm = _value_level(pkg, names)
    for oid, refs in vlm["lists"].items():
        vl = ET.SubElement(mdv, f"{{{DEF}}}ValueListDef", {"OID": oid})
        for i, (item, wc) in enumerate(refs, 1):
            ir = ET.SubElement(
                vl, f"{{{ODM}}}ItemRef", {"ItemOID": item, "OrderNumber": str(i), "Mandatory": "No"}
            )
            ET.SubElement(ir, f"{{{DEF}}}WhereClauseRef", {"WhereClauseOID": wc})
    for wc, (dataset, var, value) in vlm["where"].items():
        w = ET.SubElement(mdv, f"{{{DEF}}}WhereClauseDef", {"OID": wc})
        rc = ET.SubElement(
            w,
            f"{{{ODM}}}RangeCheck",
            {"Comparator": "EQ", "SoftHard": "Soft", f"{{{DEF}}}ItemOID": item_oid(dataset, var)},
        )
        ET.SubElement(rc, f"{{{ODM}}}CheckValue").text = value

    methods: set[str] = set()
    codelists: dict[str, set[str]] = {}
    decodes: dict[str, dict[str, str]] = {}
    items: list[ET.Element] = []
    for name in names:
        meta = domain(name)
        rows = pkg.rows[name]
        attrs = {
            "OID": group_oid(name),
            "Name": name,
            "SASDatasetName": name,
            "Repeating": "No" if name == "DM" else "Yes",
            "IsReferenceData": "Yes" if name in ("TS", "TA", "TE", "TV", "TI") else "No",
            "Purpose": "Tabulation",
            f"{{{DEF}}}Structure": meta.structure,
            f"{{{DEF}}}ArchiveLocationID": f"LF.{name}",
            f"{{{DEF}}}StandardOID": "STD.SDTMIG",
        }
        if not name.startswith("SUPP") and name not in ("TS", "TA", "TE", "TV", "TI"):
            attrs["Domain"] = name
        elif name.startswith("SUPP"):
            attrs["Domain"] = name[4:]
        ig = ET.SubElement(mdv, f"{{{ODM}}}ItemGroupDef", attrs)
        _text(ig, f"{{{ODM}}}Description", meta.label)
        keys = {k: i for i, k in enumerate(meta.keys, 1)}
        for order, var in enumerate(columns[name], 1):
            ref = {
                "ItemOID": item_oid(name, var.name),
                "OrderNumber": str(order),
                "Mandatory": "Yes" if var.core == "Req" else "No",
            }
            if var.name in keys:
                ref["KeySequence"] = str(keys[var.name])
            if var.origin == "Derived":
                ref["MethodOID"] = f"MT.{_method_key(var)}"
                methods.add(_method_key(var))
            ET.SubElement(ig, f"{{{ODM}}}ItemRef", ref)
            items.append(_item_def(name, var, rows, codelists, decodes, vlm, pkg))
        ET.SubElement(ig, f"{{{DEF}}}Class", {"Name": meta.klass})
        leaf = ET.SubElement(
            ig, f"{{{DEF}}}leaf", {"ID": f"LF.{name}", f"{{{XLINK}}}href": f"{name.lower()}.xpt"}
        )
        ET.SubElement(leaf, f"{{{DEF}}}title").text = f"{name.lower()}.xpt"
    for item in vlm["items"]:
        items.append(item)
    mdv.extend(items)
    for cl, values in sorted(codelists.items()):
        _codelist(mdv, cl, values, decodes.get(cl))
    for dictionary, versions in sorted(pkg.dictionary_versions.items()):
        ext = ET.SubElement(
            mdv,
            f"{{{ODM}}}CodeList",
            {"OID": f"CL.{dictionary.upper()}", "Name": dictionary, "DataType": "text"},
        )
        ET.SubElement(
            ext, f"{{{ODM}}}ExternalCodeList", {"Dictionary": dictionary, "Version": ", ".join(versions)}
        )
    for key in sorted(methods):
        m = ET.SubElement(
            mdv,
            f"{{{ODM}}}MethodDef",
            {"OID": f"MT.{key}", "Name": f"Algorithm for {key}", "Type": "Computation"},
        )
        _text(m, f"{{{ODM}}}Description", METHODS[key])
    leaf = ET.SubElement(mdv, f"{{{DEF}}}leaf", {"ID": "LF.PROTOCOL", f"{{{XLINK}}}href": "protocol.toml"})
    ET.SubElement(
        leaf, f"{{{DEF}}}title"
    ).text = f"Protocol file {pkg.study} {proto.version} (the CRF definition)"
    ET.indent(root)
    path.write_bytes(_serialise(root))
    (path.parent / "protocol.toml").write_text(proto.source, encoding="utf-8")


def _item_def(
    dataset: str,
    var: Var,
    rows: Sequence[dict[str, Any]],
    codelists: dict[str, set[str]],
    decodes: dict[str, dict[str, str]],
    vlm: dict[str, Any],
    pkg: Any,
) -> ET.Element:
    dt = _datatype(var, rows)
    attrs = {"OID": item_oid(dataset, var.name), "Name": var.name, "DataType": dt, "SASFieldName": var.name}
    if dt in ("text", "integer", "float"):
        attrs["Length"] = str(_length(var, rows))
    item = ET.Element(f"{{{ODM}}}ItemDef", attrs)
    _text(item, f"{{{ODM}}}Description", var.label)
    cl = _codelist_for(dataset, var)
    if cl:
        used = {str(cell(var, r.get(var.name))) for r in rows if r.get(var.name) not in (None, "")}
        codelists.setdefault(cl, set()).update(used)
        if var.name.endswith("TESTCD"):
            test = var.name[:-2]
            decodes.setdefault(cl, {}).update({str(r[var.name]): str(r.get(test, "")) for r in rows})
        ET.SubElement(item, f"{{{ODM}}}CodeListRef", {"CodeListOID": f"CL.{cl}"})
    elif var.name in ("AEDECOD", "CMDECOD"):
        dictionary = "MedDRA" if var.name == "AEDECOD" else "WHODrug"
        if dictionary in pkg.dictionary_versions:
            ET.SubElement(item, f"{{{ODM}}}CodeListRef", {"CodeListOID": f"CL.{dictionary.upper()}"})
    _origin(item, var, (var.form,) if var.form else tuple(pkg.sources.get(dataset, ())))
    vl = f"VL.{dataset}.{var.name}"
    if vl in vlm["lists"]:
        ET.SubElement(item, f"{{{DEF}}}ValueListRef", {"ValueListOID": vl})
    return item


def _origin(item: ET.Element, var: Var, forms: tuple[str, ...]) -> None:
    """def:Origin; a collected value names the protocol form(s) it was entered on: the variable's own, else
    the forms that fed its dataset in this export (the forms declaring its tests, the administrations')."""
    attrs = {"Type": var.origin}
    if var.origin == "Collected":
        attrs["Source"] = "Investigator"
    o = ET.SubElement(item, f"{{{DEF}}}Origin", attrs)
    if var.origin == "Collected" and forms:
        names = ", ".join(f"'{f}'" for f in forms)
        tables = ", ".join(f"[forms.{f}]" for f in forms)
        _text(
            o,
            f"{{{ODM}}}Description",
            f"Protocol form{'s' if len(forms) > 1 else ''} {names} (protocol.toml, {tables})",
        )


def _length(var: Var, rows: Sequence[dict[str, Any]]) -> int:
    if var.type == "Num":
        return max([1, *(len(str(v)) for r in rows if (v := cell(var, r.get(var.name))) is not None)])
    return text_length(var, rows)


def _codelist_for(dataset: str, var: Var) -> str | None:
    if var.codelist:
        return var.codelist
    if var.name.endswith("TESTCD") or var.name == "QNAM":
        return f"{dataset}.{var.name}"
    return None


def _codelist(mdv: ET.Element, oid: str, values: set[str], decode: dict[str, str] | None) -> None:
    terms = getattr(cdisc, oid, None) if "." not in oid else None
    attrs = {"OID": f"CL.{oid}", "Name": CODELIST_NAMES.get(oid, oid), "DataType": "text"}
    if terms is not None:
        attrs[f"{{{DEF}}}StandardOID"] = "STD.CT"
    cl = ET.SubElement(mdv, f"{{{ODM}}}CodeList", attrs)
    if decode:
        for v in sorted(values or {"?"}):
            ci = ET.SubElement(cl, f"{{{ODM}}}CodeListItem", {"CodedValue": v})
            _text(ci, f"{{{ODM}}}Decode", decode.get(v) or v)
        return
    for v in sorted(values or set(terms or ()) or {"?"}):
        attrs2 = {"CodedValue": v}
        if terms is not None and v not in terms:
            attrs2[f"{{{DEF}}}ExtendedValue"] = "Yes"
        ET.SubElement(cl, f"{{{ODM}}}EnumeratedItem", attrs2)


def _value_level(pkg: Any, names: list[str]) -> dict[str, Any]:
    """Value-level metadata: a findings result per test code, a SUPP-- value per QNAM."""
    lists: dict[str, list[tuple[str, str]]] = {}
    where: dict[str, tuple[str, str, str]] = {}
    items: list[ET.Element] = []
    for name in names:
        rows = pkg.rows[name]
        if name.startswith("SUPP"):
            key_var, result_var = "QNAM", "QVAL"
        elif f"{name}TESTCD" in domain(name).names and f"{name}ORRES" in domain(name).names:
            key_var, result_var = f"{name}TESTCD", f"{name}ORRES"
        else:
            continue
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(str(r.get(key_var)), []).append(r)
        oid = f"VL.{name}.{result_var}"
        for value, grp in sorted(groups.items()):
            wc = f"WC.{name}.{key_var}.{value}"
            item = f"IT.{name}.{result_var}.{value}"
            lists.setdefault(oid, []).append((item, wc))
            where[wc] = (name, key_var, value)
            texts = [str(r.get(result_var) or "") for r in grp]
            numeric = all(_is_number(t) for t in texts if t) and any(texts) and not name.startswith("SUPP")
            dt = "float" if numeric else "text"
            el = ET.Element(
                f"{{{ODM}}}ItemDef",
                {
                    "OID": item,
                    "Name": result_var,
                    "DataType": dt,
                    "Length": str(max([1, *(len(t) for t in texts)])),
                    "SASFieldName": result_var,
                },
            )
            label = str(grp[0].get("QLABEL") or grp[0].get(f"{name}TEST") or value)
            _text(el, f"{{{ODM}}}Description", label)
            origin = str(grp[0].get("QORIG") or "Collected")
            ET.SubElement(
                el,
                f"{{{DEF}}}Origin",
                {
                    "Type": "Derived"
                    if origin == "Derived"
                    else "Assigned"
                    if origin == "Assigned"
                    else "Collected"
                }
                | ({"Source": "Investigator"} if origin not in ("Derived", "Assigned") else {}),
            )

            items.append(el)
    return {"lists": lists, "where": where, "items": items}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _serialise(root: ET.Element) -> bytes:
    """define.xml's bytes with ODM as the default namespace and the def: and xlink: prefixes.

    ElementTree's prefix map is process-global: a library that registers its own prefix for a
    URI (odmlib's parser registers ``odm`` for ODM 1.3) changed how this file was spelled when it
    ran after this module's import. So the prefixes are registered at the moment of writing.
    (``tostring(default_namespace=…)`` is no way out: it refuses the unqualified attributes.)
    """
    ET.register_namespace("", ODM)
    ET.register_namespace("def", DEF)
    ET.register_namespace("xlink", XLINK)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
