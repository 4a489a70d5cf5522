"""What every wardcrf PDF shares: the embedded font, legible text, badges, "page N of M".

An inspector reads these documents on paper, years later, in a country whose
language may not be the ward's. So:

- **One embedded font that covers Chinese.** A Unicode TrueType font is
  found on the machine (fontconfig's list of fonts for `zh`, then the usual
  Debian paths): `.ci/run` installs Debian's ``fonts-wqy-microhei``
  (WenQuanYi Micro Hei, Apache-2.0, maintained in Debian), and
  ``WARDCRF_PDF_FONT=/path/font.ttf`` names another. Only fonts with
  TrueType outlines are used: fpdf2 writes glyph widths for a subsetted
  CFF (OpenType/PostScript) CID font that do not match the subset's glyph
  numbers, so a conforming reader spaces the text wrongly and text
  extraction breaks (seen with Noto Sans CJK's ``.ttc``). The document states
  the font's name, version and licence, never where it lies on this machine.
  Without such a font, characters the built-in font cannot show are printed
  as ``<U+hex>``: a document never fails and never drops a character silently.
- **Badges**: states an auditor scans for ("CHANGED SINCE FIRST ENTRY",
  "CHANGED SINCE SIGNED", "MISMATCH") are white on a red box; their benign
  counterparts are plain grey text. The difference survives a black-and-white
  photocopy (a box against none), not only a colour screen.
- **Footer**: who printed it, when, and "page N of M" on every page.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError

# Checked in this order when fontconfig is absent (or lists nothing for Chinese).
KNOWN_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
LATIN_FALLBACK = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
CJK_PROBE = "患者发热咳嗽签名李伟"  # participant, fever, cough, signature, a name

_REPLACE = {
    "—": "-",
    "–": "-",
    "→": "->",
    "←": "<-",
    "…": "...",
    "≥": ">=",
    "≤": "<=",
    "·": "-",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "×": "x",
    "µ": "u",
}


@dataclass(frozen=True)
class Font:
    """A font face chosen for a document: the file and face, and what the document says about it."""

    path: str
    index: int
    name: str
    version: str
    licence: str
    cjk: bool

    @property
    def statement(self) -> str:
        """The sentence a document prints: name, version, licence (no machine path)."""
        cover = "covers Chinese" if self.cjk else "Latin only: other scripts are printed as <U+hex>"
        return f"{self.name} {self.version} ({self.licence}); embedded as a subset; {cover}"


BUILTIN = Font("", 0, "built-in Helvetica", "", "PDF standard font", False)


def _describe(path: str, index: int) -> Font | None:
    """The face's name, version and licence if it has TrueType outlines; None otherwise."""
    try:
        from fontTools.ttLib import TTCollection, TTFont

        if path.lower().endswith((".ttc", ".otc")):
            face = TTCollection(path, lazy=True).fonts[index]
        else:
            face = TTFont(path, lazy=True)
        if "glyf" not in face:
            return None
        cmap = face.getBestCmap() or {}
        names = face["name"]
    except Exception:  # unreadable or not a font: not a candidate
        return None

    def name(nid: int) -> str:
        value = names.getDebugName(nid)
        return " ".join(str(value).split()) if value else ""

    cjk = all(ord(ch) in cmap for ch in CJK_PROBE)
    licence = name(13) or "licence not stated in the font"
    url = name(14)
    if url and url not in licence:
        licence = f"{licence}, {url}"
    return Font(path, index, name(4) or name(1) or Path(path).stem, name(5), licence, cjk)


def font_candidates() -> list[tuple[str, int]]:
    """(file, face index) of fonts that may cover Chinese: fontconfig's list, then the known paths."""
    found: list[tuple[str, int]] = []
    if shutil.which("fc-list"):
        try:
            done = subprocess.run(
                ["fc-list", ":lang=zh:outline=true", "file", "index"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            for line in sorted(done.stdout.splitlines()):
                path, _, rest = line.partition(":")
                index = rest.strip().removeprefix("index=").strip()
                found.append((path.strip(), int(index) if index.isdigit() else 0))
        except (OSError, subprocess.SubprocessError):
            pass
    # WenQuanYi Micro Hei first: the one CI installs, so a document looks the same everywhere
    found.sort(key=lambda f: (0 if "wqy-microhei" in f[0] else 1, f))
    for path in KNOWN_FONTS:
        if (path, 0) not in found and Path(path).is_file():
            found.append((path, 0))
    return found


@functools.lru_cache(maxsize=8)
def _choose(env: str | None, candidates: tuple[tuple[str, int], ...]) -> Font | None:
    if env:
        font = _describe(env, 0) if Path(env).is_file() else None
        if font is None:
            raise UsageError(
                f"WARDCRF_PDF_FONT={env} is not a TrueType font file (.ttf/.ttc with TrueType outlines)"
            )
        return font
    for path, index in candidates:
        font = _describe(path, index)
        if font is not None and font.cjk:
            return font
    if Path(LATIN_FALLBACK).is_file():
        return _describe(LATIN_FALLBACK, 0)
    return None


def choose_font() -> Font:
    """The font a document embeds: `WARDCRF_PDF_FONT`, else a TrueType font covering Chinese, else Latin."""
    env = os.environ.get("WARDCRF_PDF_FONT") or None
    return _choose(env, tuple(font_candidates())) or BUILTIN


class Legible:
    """Makes any value printable in the chosen font, never raising, never dropping a character."""

    def __init__(self, font: Font) -> None:
        self.unicode_font = bool(font.path)
        self.cjk = font.cjk

    def __call__(self, text: Any) -> str:
        s = "" if text is None else str(text)
        s = "".join(ch for ch in s if ch in "\n\t" or ord(ch) >= 32)
        if self.unicode_font:
            if self.cjk:
                return s
            return "".join(ch if ord(ch) < 0x2E80 else f"<U+{ord(ch):04X}>" for ch in s)
        s = "".join(_REPLACE.get(ch, ch) for ch in s)
        return "".join(ch if ord(ch) < 256 else f"<U+{ord(ch):04X}>" for ch in s)


ALERT_FILL = (176, 24, 24)
CALM_TEXT = (90, 90, 90)


class Document:
    """An A4 document with the chosen font, wrapped lines, headings, badges and the footer."""

    def __init__(self, footer_line: str) -> None:
        from fpdf import FPDF

        self.font = choose_font()
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(True, margin=16)
        self.pdf.set_margins(15, 15, 15)
        if self.font.path:
            self.pdf.add_font("body", "", self.font.path, collection_font_number=self.font.index)
            self.family = "body"
        else:
            self.family = "helvetica"
        self.t = Legible(self.font)
        self.footer_text = self.t(footer_line)
        pdf, family, text = self.pdf, self.family, self.footer_text

        def draw_footer() -> None:
            pdf.set_y(-12)
            pdf.set_font(family, size=7)
            pdf.set_text_color(0, 0, 0)
            pdf.cell(0, 5, f"{text} - page {pdf.page_no()} of {{nb}}", align="C")

        pdf.footer = draw_footer  # type: ignore[method-assign]

    def add_page(self) -> None:
        self.pdf.add_page()

    def set_font(self, size: float) -> None:
        self.pdf.set_font(self.family, size=size)

    def line(self, text: str, size: float = 9, h: float = 4.6, *, char_wrap: bool = False) -> None:
        from fpdf.enums import WrapMode, XPos, YPos

        self.set_font(size)
        self.pdf.multi_cell(
            0,
            h,
            self.t(text),
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            wrapmode=WrapMode.CHAR if char_wrap else WrapMode.WORD,
        )

    def heading(self, text: str, size: float = 13) -> None:
        self.pdf.ln(2)
        self.line(text, size, h=size * 0.5)
        self.pdf.ln(1)

    def rows(self, rows: list[tuple[str, str]], size: float = 8.5) -> None:
        """Label/value rows as wrapped lines (fpdf2's table layout is too slow for whole casebooks)."""
        for a, b in rows:
            self.line(f"{a}: {b}", size, h=4.2)
        self.pdf.ln(1)

    def badge(self, text: str, *, alert: bool, size: float = 8.5) -> None:
        """One state on its own line: alerts white on a red box, calm states plain grey."""
        from fpdf.enums import XPos, YPos

        self.set_font(size)
        shown = self.t(text)
        room = self.pdf.w - self.pdf.l_margin - self.pdf.r_margin
        w = self.pdf.get_string_width(shown) + 4
        if alert:
            self.pdf.set_fill_color(*ALERT_FILL)
            self.pdf.set_text_color(255, 255, 255)
        else:
            self.pdf.set_text_color(*CALM_TEXT)
        if w <= room:
            self.pdf.cell(w, 5, shown, fill=alert, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:  # a long state wraps inside its box, never runs off the page
            self.pdf.multi_cell(0, 4.6, shown, fill=alert, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.set_text_color(0, 0, 0)

    def image(self, data: bytes, w: float = 45) -> None:
        import io

        if self.pdf.get_y() > 230:
            self.pdf.add_page()
        x, y = self.pdf.get_x(), self.pdf.get_y()
        info = self.pdf.image(io.BytesIO(data), w=w)
        # a thin frame: a photographed white page must not melt into the paper
        self.pdf.set_draw_color(150, 150, 150)
        self.pdf.rect(x, y, info.rendered_width, info.rendered_height)
        self.pdf.set_draw_color(0, 0, 0)
        self.pdf.ln(1)

    def save(self, out: Path) -> None:
        """Write atomically: a reader never finds half a document under `out`."""
        tmp = out.with_name(out.name + ".part")
        self.pdf.output(str(tmp))
        tmp.replace(out)
