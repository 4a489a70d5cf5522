"""A protocol file of either format, read by its format's reader, and format 2 in a site.

`[protocol] format = 2` selects the engine's reader (`engine.model`); anything
else is format 1 (`wardcrf.protocol`, docs/protocol-v1.md). Both readers share
format 1's limits (size, characters, nesting) and refuse with
`FILE:LINE: key.path: problem`.

**Format 2 in a site** (docs/engine.md, "Format 2 on a ward"), two ways:

* A format-2 file that *re-encodes* a format-1 version (its `reencodes` lists
  that version's SHA-256, same id and version; the shipped first trial) is the
  same protocol version: loading it records `protocol.reencoded` beside that
  version's `protocol.loaded`, and `model_of` hands the engine the format-2
  model for it. Records are still captured under the format-1 version, so the
  format-1 workflow and its tests are unchanged.
* A format-2 file that re-encodes nothing (PALM, PALM007) is a version of its
  own: `protocol.loaded` holds its source, `protocol.active` reads it as the
  ward's `Protocol` projected from the model (`engine.ward`), and the ward's
  rules for it are the engine's (`workflow.engine_rules`).

For a format-1 version without a re-encoding, `model_of` upgrades it
(`engine.protocol_v1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wardcrf import protocol as format1
from wardcrf.errors import Refused
from wardcrf.sqlstore import common_dialect

if TYPE_CHECKING:  # the model's reader (jsonschema) is imported when a format-2 file is read, not at start-up
    from collections.abc import Mapping

    from wardcrf.engine import model
    from wardcrf.eventlog import Event
    from wardcrf.features import Registry
    from wardcrf.store import Store


def format_of(source: str, filename: str = "<protocol>") -> int:
    """The format a file declares (`[protocol] format`); 1 when it says none. Reads within format 1's limits."""
    return format1.declared_format(source, filename)


def parse(source: str, filename: str = "<protocol>") -> format1.Protocol | model.Model:
    """Validate a file of either format; `ProtocolFileError` names every problem with its line."""
    if format_of(source, filename) == 2:
        from wardcrf.engine import model

        return model.parse(source, filename)
    return format1.parse(source, filename)


def read_file(path: Path) -> format1.Protocol | model.Model:
    """Read and validate a protocol file of either format (size checked before reading)."""
    return parse(format1.read_text(path), Path(path).name)


def read_named(path: Path) -> format1.Protocol | model.Model:
    """`read_file`, or a shipped format-2 protocol named without a path (`palm`) when no such file exists."""
    from wardcrf.engine import model

    names = [n.removesuffix(".toml") for n in model.SHIPPED]
    if str(path) in names and not Path(path).exists():
        return model.shipped(f"{path}.toml")
    return read_file(path)


@dataclass(frozen=True)
class Reencoding:
    """A format-2 file and the format-1 version it re-encodes (same id and version)."""

    model: model.Model
    of: format1.Protocol


def reencodes(m: model.Model) -> tuple[str, ...]:
    """The SHA-256 (hex) of every format-1 source the file says it re-encodes."""
    listed = m.data["protocol"].get("reencodes", ())
    return tuple(str(s).removeprefix("sha256:") for s in listed)


def shipped_format1_for(m: model.Model) -> format1.Protocol:
    """The format-1 file shipped with wardcrf that `m` re-encodes; `Refused` naming why not."""
    shipped = format1.default_protocol()
    if (shipped.id, shipped.version) == (m.id, m.version) and shipped.sha256 in reencodes(m):
        return shipped
    raise Refused(_cannot_run(m))


@dataclass(frozen=True)
class FirstProtocol:
    """What a new site loads: a format-1 version and, when given as format 2, its re-encoding."""

    of: format1.Protocol
    model: model.Model | None = None


def first_protocol(read: format1.Protocol | model.Model | None) -> FirstProtocol:
    """The protocol a new site starts with (`wardcrf init --protocol`); `Refused` before anything is created.

    A format-2 file that lists `reencodes` starts the site with the shipped
    format-1 version it re-encodes (refused when it re-encodes none shipped);
    one that lists none is the site's first version itself.
    """
    if read is None:
        return FirstProtocol(format1.default_protocol())
    if isinstance(read, format1.Protocol):
        format1.check_runs(read)  # refused before anything is created
        return FirstProtocol(read)
    if not reencodes(read):
        return FirstProtocol(ward_protocol(read))
    return FirstProtocol(shipped_format1_for(read), read)


def ward_protocol(m: model.Model) -> format1.Protocol:
    """A standalone format-2 version as the ward's `Protocol` (`engine.ward`)."""
    from wardcrf.engine import ward

    return ward.of(m)


def _cannot_run(m: model.Model) -> str:
    return (
        f"{m.id} {m.version} says it re-encodes a format-1 version ([protocol] reencodes) that is not "
        "loaded on this site: load that version first, or remove `reencodes` to load the file as a "
        "version of its own (docs/engine.md, 'Format 2 on a ward')"
    )


def reencoding_on(store: Store, m: model.Model) -> Reencoding:
    """The loaded format-1 version `m` re-encodes on this site; `Refused` naming why not."""
    row = store.one("SELECT sha256 FROM protocols WHERE protocol_id = ? AND version = ?", (m.id, m.version))
    if row is None or row[0] not in reencodes(m):
        raise Refused(_cannot_run(m))
    return Reencoding(m, format1.version(store, {"id": m.id, "version": m.version}))


def load(session: Any, m: model.Model) -> Event:
    """Load a format-2 file (admin, investigator: `protocol.load`): the re-encoding of a loaded version
    when it lists `reencodes`, else a version of its own, made active (`protocol.loaded`)."""
    session.require("protocol.load", what="load protocol files")
    if not reencodes(m):
        return format1.load(session, ward_protocol(m))
    return record_reencoded(session.store, session.ctx, session.author, reencoding_on(session.store, m))


def record_reencoded(store: Store, ctx: Any, author: Any, r: Reencoding) -> Event:
    """Append `protocol.reencoded` (also used by `Site.init`, before any session exists)."""
    from wardcrf.eventlog import append

    row = store.one(
        "SELECT sha256 FROM protocol_encodings WHERE protocol_id = ? AND version = ?",
        (r.model.id, r.model.version),
    )
    if row is not None:
        same = row[0] == r.model.sha256
        raise Refused(
            f"{r.model.id} {r.model.version} already has a format-2 re-encoding"
            + ("" if same else " with different content; give the changed file a new version")
        )
    return append(
        store,
        ctx,
        author,
        type="protocol.reencoded",
        subject=f"protocol:{r.model.id}",
        body={
            "protocol_id": r.model.id,
            "version": r.model.version,
            "sha256": r.model.sha256,
            "reencodes": r.of.sha256,
            "filename": _filename(r.model),
            "source": r.model.source,
        },
    ).event


def _filename(m: model.Model) -> str:
    return f"{m.id.lower()}-{m.version}.toml"


def model_of(store: Store, ref: Mapping[str, str] | None) -> model.Model:
    """The engine's model of a version (the active one if `ref` is None; `VersionNotLoaded` for a version
    not loaded here, never the active one instead).

    The format-2 re-encoding when one is loaded, else format 1 upgraded.
    """
    p = format1.version(store, ref)
    if p.engine is not None:  # a format-2 version of its own
        return p.engine
    row = store.one(
        "SELECT source FROM protocol_encodings WHERE protocol_id = ? AND version = ? AND reencodes = ?",
        (p.id, p.version, p.sha256),
    )
    if row is not None:
        from wardcrf.engine import model

        return model.parse_cached(str(row[0]), f"{p.id} {p.version} (format 2, loaded)")
    from wardcrf.engine import protocol_v1

    return protocol_v1.upgrade(p)


@common_dialect
def _reencoded(store: Store, e: Event) -> None:
    b = e.body
    store.execute(
        "INSERT INTO protocol_encodings (protocol_id, version, sha256, reencodes, source, loaded_event)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (protocol_id, version) DO NOTHING",
        # Two laptops of a site record the same re-encoding: the hub keeps the first.
        (b["protocol_id"], b["version"], b["sha256"], b["reencodes"], b["source"], e.id),
    )


def _read_stored(source: str, filename: str) -> format1.Protocol:
    from wardcrf.engine import ward

    return ward.read(source, filename)


def register(registry: Registry) -> None:
    """Plug the re-encodings' projection and the reader of stored format-2 versions in (`wardcrf.features`)."""
    registry.projector(_reencoded, "protocol.reencoded")
    registry.protocol_reader(_read_stored)
    registry.format1_run_as(_run_through)


def _run_through(p: format1.Protocol, strict: bool) -> format1.Protocol | None:
    """The ward's `Protocol` the engine runs format-1 version `p` as, keeping `p`'s SHA-256 and source (the
    version stays the one stored): the shipped format-2 file that re-encodes it (its SHA-256 in the file's
    `reencodes`, same id and version), else the same declarations with `p`'s own values
    (`engine.reencode_v1`; a version loaded before, `strict` false, with format 1's leniency: what format 1
    ignored is ignored again). When `p` cannot run on the engine: `ProtocolFileError` naming why at its lines
    if `strict` (a file being loaded), else None (a version loaded before: read as stored, its records
    readable, no new record under it: `workflow.service`)."""
    from dataclasses import replace

    from wardcrf.engine import model, reencode_v1, ward
    from wardcrf.protocol_file import ProtocolFileError

    for name in model.SHIPPED:
        m = model.shipped(name)
        if (m.id, m.version) == (p.id, p.version) and p.sha256 in reencodes(m):
            return replace(ward.of(m, f"{p.id.lower()}-{p.version}.toml"), sha256=p.sha256, source=p.source)
    try:
        m = reencode_v1.reencode(p, stored=not strict)
    except ProtocolFileError:
        if strict:
            raise
        return None
    return replace(ward.of(m, p.filename), sha256=p.sha256, source=p.source)
