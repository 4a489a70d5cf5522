"""Every bound on outside input, with its default: the table docs/security.md prints.

Each limit is owned by the module that enforces it (the constant sits beside
the check); this module only reads them, so the documentation is generated
from the values the code uses and a test keeps docs/security.md equal to
`markdown_table()`. Not imported at run time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    default: str
    what: str


def _size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size:,} {unit}"
    return f"{n:,} bytes"


def rows() -> list[Limit]:
    from . import drafts, ids, protocol_file, text
    from .coding import files as coding_files
    from .coldchain import loggers
    from .photos import validate as photos
    from .sync.bundle import LIMITS
    from .sync.server import BodyTimeouts

    return [
        Limit(
            "sync.bundle.LIMITS.bundle_bytes",
            _size(LIMITS.bundle_bytes),
            "a bundle file, or an HTTP push body counted while it streams, chunked or not "
            "(`hub serve --max-body-mb`)",
        ),
        Limit(
            "sync.server.BodyTimeouts.idle",
            f"{BodyTimeouts.idle:g} s",
            "the longest pause in an HTTP push body (`hub serve --body-idle-timeout`; then 408, nothing kept)",
        ),
        Limit(
            "sync.server.BodyTimeouts.min_rate",
            f"{BodyTimeouts.min_rate:,} bytes/s",
            "the slowest average of an HTTP push body after its first idle-timeout seconds "
            "(`hub serve --body-min-rate`; 0: off)",
        ),
        Limit("sync.bundle.LIMITS.members", f"{LIMITS.members:,}", "members of a bundle's archive"),
        Limit("sync.bundle.LIMITS.manifest_bytes", _size(LIMITS.manifest_bytes), "a bundle's manifest"),
        Limit("sync.bundle.LIMITS.sums_bytes", _size(LIMITS.sums_bytes), "SHA256SUMS and its signature"),
        Limit("sync.bundle.LIMITS.event_line_bytes", _size(LIMITS.event_line_bytes), "one event line"),
        Limit("sync.bundle.LIMITS.events", f"{LIMITS.events:,}", "event lines in one bundle"),
        Limit(
            "protocol_file.MAX_FILE_BYTES",
            _size(protocol_file.MAX_FILE_BYTES),
            "a protocol file, checked before it is read",
        ),
        Limit(
            "protocol_file.MAX_NESTING",
            f"{protocol_file.MAX_NESTING}",
            "arrays and inline tables inside one another",
        ),
        Limit(
            "protocol_file.MAX_LABEL_CHARS",
            f"{protocol_file.MAX_LABEL_CHARS:,} characters",
            "a protocol title or label",
        ),
        Limit(
            "protocol_file.MAX_TEXT_CHARS",
            f"{protocol_file.MAX_TEXT_CHARS:,} characters",
            "any other protocol string",
        ),
        Limit(
            "text.MAX_ONE_LINE",
            f"{text.MAX_ONE_LINE:,} characters",
            "one-line free text (AE term, reason, full name) where the protocol sets no `max_length`",
        ),
        Limit(
            "text.MAX_SEVERAL_LINES", f"{text.MAX_SEVERAL_LINES:,} characters", "free text of several lines"
        ),
        Limit(
            "ids.MAX_INPUT",
            f"{ids.MAX_INPUT:,} characters",
            "an id as typed or scanned, before any Unicode work",
        ),
        Limit("ids.MAX_LENGTH", f"{ids.MAX_LENGTH} characters", "a kit, lot or participant id"),
        Limit("coldchain.loggers.MAX_FILE_BYTES", _size(loggers.MAX_FILE_BYTES), "a temperature logger file"),
        Limit(
            "photos.validate.DEFAULT_MAX_BYTES",
            _size(photos.DEFAULT_MAX_BYTES),
            f"a photo file (a site may raise it up to {_size(photos.HARD_MAX_BYTES)})",
        ),
        Limit(
            "photos.validate.DEFAULT_MAX_PIXELS",
            f"{photos.DEFAULT_MAX_PIXELS:,} pixels",
            f"a photo's decoded size (at most {photos.HARD_MAX_PIXELS:,})",
        ),
        Limit("coding.files.MAX_FILE_BYTES", _size(coding_files.MAX_FILE_BYTES), "a MedDRA or WHODrug file"),
        Limit("coding.files.MAX_LINE_CHARS", f"{coding_files.MAX_LINE_CHARS:,} characters", "a line of one"),
        Limit("drafts.MAX_BYTES", _size(drafts.MAX_BYTES), "one saved draft of a form"),
        Limit("drafts.MAX_PER_USER", f"{drafts.MAX_PER_USER}", "drafts one person keeps"),
        Limit(
            "text.excerpt",
            f"{_excerpt_default()} characters",
            "what an error repeats of a value (then its length)",
        ),
    ]


def _excerpt_default() -> int:
    import inspect

    from . import text

    return int(inspect.signature(text.excerpt).parameters["limit"].default)


def markdown_table() -> str:
    lines = ["| limit | default | what |", "|---|---|---|"]
    lines += [f"| `{r.name}` | {r.default} | {r.what} |" for r in rows()]
    return "\n".join(lines) + "\n"
