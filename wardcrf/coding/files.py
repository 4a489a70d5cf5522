"""Reading a licensed dictionary's distribution files, refusing anything malformed.

Dictionary files come from outside (a MedDRA or WHODrug subscription,
copied onto a laptop by hand), so they are read like any hostile input:
bounded size and line length, an encoding that must decode strictly, and
no control, format (bidi override, zero-width) or unassigned characters in
any field. A problem refuses the whole load with one line naming the file,
the line and what is wrong; nothing is stored from a refused load.

MedDRA's English files are "extended ASCII" (Windows-1252 in practice) and
its other languages UTF-8, so each file is decoded as UTF-8 first and as
Windows-1252 when that fails; the encoding used is reported with the load.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import Refused, UsageError

MAX_FILE_BYTES = 512 * 1024 * 1024
"""A MedDRA file is a few MB; WHODrug B3's fixed-width files are larger. Anything above is refused."""
MAX_LINE_CHARS = 4096


class DictionaryFileError(Refused):
    """A distribution file that cannot be loaded; nothing from the load was stored."""

    def __init__(self, file: str, reason: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"dictionary not loaded: {where}: {reason}")


@dataclass(frozen=True)
class FileInfo:
    """What was read: name, SHA-256, size and encoding (recorded in the load event)."""

    name: str
    sha256: str
    bytes: int
    encoding: str

    def as_json(self) -> dict[str, object]:
        return {"sha256": self.sha256, "bytes": self.bytes, "encoding": self.encoding}


def find(directory: Path, name: str, *, required: bool = True) -> Path | None:
    """`name` in `directory`, matched without regard to case (distributions differ)."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory (give the folder holding the distribution files)")
    wanted = name.lower()
    for p in sorted(directory.iterdir()):
        if p.name.lower() == wanted and p.is_file():
            return p
    if required:
        raise UsageError(f"{directory} has no {name}: give the folder of the unpacked distribution files")
    return None


def check_text(text: str, file: str, line: int, what: str) -> str:
    """Refuse control, format (bidi, zero-width), surrogate, private-use and unassigned characters."""
    for i, ch in enumerate(text, 1):
        if unicodedata.category(ch)[0] == "C":
            raise DictionaryFileError(
                file, f"{what} has character U+{ord(ch):04X} at position {i} (control or invisible)", line
            )
    return text


class DistributionFile:
    """One distribution file, read line by line (never whole into memory).

    Iterating yields ``(line number, text)`` without the line ending, after
    the size, line-length and encoding checks; `info` (name, SHA-256 of the
    bytes, size, encoding) is complete once the iteration has finished.
    """

    def __init__(self, path: Path, *, max_bytes: int | None = None) -> None:
        self.path = path
        self.name = path.name
        self.limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
        self._sha = hashlib.sha256()
        self._bytes = 0
        self.encoding = "ascii"

    @property
    def info(self) -> FileInfo:
        return FileInfo(self.name, self._sha.hexdigest(), self._bytes, self.encoding)

    def _decode(self, raw: bytes, n: int) -> str:
        if raw.isascii():
            return raw.decode("ascii")
        if self.encoding in ("ascii", "utf-8"):
            try:
                text = raw.decode("utf-8")
                self.encoding = "utf-8"
                return text
            except UnicodeDecodeError:
                if self.encoding == "utf-8":
                    raise DictionaryFileError(
                        self.name, "not UTF-8 although earlier lines were (mixed encodings)", n
                    ) from None
                self.encoding = "windows-1252"
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise DictionaryFileError(
                self.name, f"neither UTF-8 nor Windows-1252 text (byte {exc.start + 1} of the line)", n
            ) from None

    def __iter__(self) -> Iterator[tuple[int, str]]:
        try:
            size = self.path.stat().st_size
            fh = self.path.open("rb")
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror}") from None
        if size > self.limit:
            fh.close()
            raise DictionaryFileError(
                self.name, f"file is {size} bytes, more than the {self.limit}-byte limit"
            )
        with fh:
            n = 0
            max_raw = MAX_LINE_CHARS * 4 + 2
            while True:
                raw = fh.readline(max_raw + 1)
                if not raw:
                    break
                n += 1
                self._bytes += len(raw)
                self._sha.update(raw)
                if self._bytes > self.limit:
                    raise DictionaryFileError(self.name, f"file is more than the {self.limit}-byte limit")
                if len(raw) > max_raw and not raw.endswith(b"\n"):
                    raise DictionaryFileError(
                        self.name, f"line is longer than {MAX_LINE_CHARS} characters", n
                    )
                if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                raw = raw.rstrip(b"\r\n")
                text = self._decode(raw, n)
                if len(text) > MAX_LINE_CHARS:
                    raise DictionaryFileError(
                        self.name, f"line is {len(text)} characters (limit {MAX_LINE_CHARS})", n
                    )
                yield n, text


def dollar_fields(line: str, file: str, n: int, minimum: int) -> list[str]:
    """Split a MedDRA ``$``-delimited line (every field ends with ``$``)."""
    if not line.endswith("$"):
        raise DictionaryFileError(file, "line does not end with '$' (not a MedDRA ASCII file?)", n)
    parts = line[:-1].split("$")
    if len(parts) < minimum:
        raise DictionaryFileError(file, f"{len(parts)} fields, expected at least {minimum}", n)
    return parts
