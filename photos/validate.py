"""Look inside a photo before it is stored: is it a whole, safe, supported image?

Photos come from outside (a camera card, a phone's export folder), so they
are untrusted input. `inspect` refuses, with one line naming the file and
what is wrong, anything that is not a JPEG, PNG or HEIC/HEIF image, is
truncated or corrupt, is larger than the byte limit, or has more pixels than
the pixel limit (a decompression bomb: a small file that decodes to
gigabytes). Pillow's own bomb guard stays on as a second fence.

The same decode that proves the image whole also makes the preview: JPEGs
are decoded in draft mode (libjpeg scales while decoding, so a 24-megapixel
photo never exists as 72 MB of pixels), yet every compressed byte is still
read, so a truncated file is still caught.

Pillow (and the HEIF plugin) are imported inside the functions: the TUI
imports this package at start-up and should not pay for them.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from wardcrf.errors import Refused, UsageError

if TYPE_CHECKING:
    from PIL import Image as PILImage

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 40 * MB
DEFAULT_MAX_PIXELS = 60_000_000
"""60 megapixels: above every phone's default output (12-50 MP), far below a bomb."""
HARD_MAX_PIXELS = 250_000_000
"""No configuration may raise the pixel limit beyond this: the bomb guard is never off."""
HARD_MAX_BYTES = 1024 * MB
DEFAULT_CAPTURE_SPAN = timedelta(hours=24)
PREVIEW_EDGE = 1280
"""Longest edge of the derived preview, in pixels: enough for a full-screen look."""
PREVIEW_QUALITY = 85

FORMATS = {"JPEG": "jpg", "PNG": "png", "HEIF": "heic"}
"""Accepted Pillow formats and the file extension of their originals."""

HEIC_HELP = (
    "HEIC/HEIF support needs the pillow-heif package (pip install pillow-heif); "
    "or convert the photo to JPEG first (on the phone: Settings > Camera > Formats > "
    "Most Compatible; or `heif-convert IMG.HEIC IMG.jpg`)"
)

_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
}


@dataclass(frozen=True)
class PhotoLimits:
    """What an import accepts. Configurable per command and by environment.

    `WARDCRF_PHOTO_MAX_MB`, `WARDCRF_PHOTO_MAX_MEGAPIXELS` and
    `WARDCRF_PHOTO_CAPTURE_SPAN_HOURS` override the defaults site-wide.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    capture_span: timedelta = DEFAULT_CAPTURE_SPAN

    def __post_init__(self) -> None:
        if not 0 < self.max_bytes <= HARD_MAX_BYTES:
            raise UsageError(f"photo size limit must be between 1 byte and {HARD_MAX_BYTES // MB} MB")
        if not 0 < self.max_pixels <= HARD_MAX_PIXELS:
            raise UsageError(
                "photo pixel limit must be between 1 and "
                f"{HARD_MAX_PIXELS // 1_000_000} megapixels "
                "(the decompression bomb guard cannot be switched off)"
            )
        if self.capture_span <= timedelta(0):
            raise UsageError("the capture-time span must be greater than zero")

    @classmethod
    def from_env(cls) -> PhotoLimits:
        def number(name: str) -> float | None:
            raw = os.environ.get(name)
            if raw is None or not raw.strip():
                return None
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"{name}={raw!r} is not a number") from None
            if value <= 0:
                raise UsageError(f"{name}={raw!r} must be greater than zero")
            return value

        mb = number("WARDCRF_PHOTO_MAX_MB")
        mp = number("WARDCRF_PHOTO_MAX_MEGAPIXELS")
        hours = number("WARDCRF_PHOTO_CAPTURE_SPAN_HOURS")
        return cls(
            max_bytes=int(mb * MB) if mb else DEFAULT_MAX_BYTES,
            max_pixels=int(mp * 1_000_000) if mp else DEFAULT_MAX_PIXELS,
            capture_span=timedelta(hours=hours) if hours else DEFAULT_CAPTURE_SPAN,
        )

    def with_overrides(
        self,
        *,
        max_mb: float | None = None,
        max_megapixels: float | None = None,
        capture_span_hours: float | None = None,
    ) -> PhotoLimits:
        for name, v in (
            ("--max-mb", max_mb),
            ("--max-megapixels", max_megapixels),
            ("--capture-span-hours", capture_span_hours),
        ):
            if v is not None and v <= 0:
                raise UsageError(f"{name} must be greater than zero (got {v})")
        return PhotoLimits(
            max_bytes=int(max_mb * MB) if max_mb else self.max_bytes,
            max_pixels=int(max_megapixels * 1_000_000) if max_megapixels else self.max_pixels,
            capture_span=timedelta(hours=capture_span_hours) if capture_span_hours else self.capture_span,
        )


@dataclass(frozen=True)
class Preview:
    """A derived, downscaled JPEG with no metadata at all (no EXIF, no GPS)."""

    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Inspection:
    """What a valid photo is: format, size, pixels and the EXIF facts we keep."""

    format: str
    width: int
    height: int
    size: int
    captured_at: str | None
    camera: str | None
    has_gps: bool
    preview: Preview = field(repr=False)

    @property
    def extension(self) -> str:
        return FORMATS[self.format]


def heif_available() -> bool:
    """Register the HEIF opener if pillow-heif is installed; say whether it is."""
    try:
        import pillow_heif
    except ImportError:
        return False
    if not _heif_registered[0]:
        pillow_heif.register_heif_opener()
        _heif_registered[0] = True
    return True


_heif_registered = [False]


def sniff(head: bytes) -> str | None:
    """The format the first bytes announce (JPEG, PNG, HEIF), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def _fmt_mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


def check_size(name: str, size: int, limits: PhotoLimits) -> None:
    if size == 0:
        raise Refused(f"{name}: not an image (the file is empty); nothing stored")
    if size > limits.max_bytes:
        raise Refused(
            f"{name}: {_fmt_mb(size)} is larger than the photo size limit of "
            f"{_fmt_mb(limits.max_bytes)}; nothing stored"
        )


def _precheck(name: str, data: bytes, limits: PhotoLimits) -> str:
    """Size limit and a supported format by magic bytes, before Pillow sees anything."""
    check_size(name, len(data), limits)
    sniffed = sniff(data[:32])
    if sniffed == "HEIF" and not heif_available():
        raise Refused(f"{name}: HEIC/HEIF photo not supported here: {HEIC_HELP}; nothing stored")
    if sniffed is None:
        _refuse_unknown(name, data)
    return sniffed


def inspect(name: str, data: bytes, limits: PhotoLimits) -> Inspection:
    """Validate `data` fully and derive its preview; raise `Refused` naming `name`."""
    from PIL import Image

    sniffed = _precheck(name, data, limits)
    # Pillow's decompression-bomb guard stays on whatever a caller did to it,
    # tied to our limit: Pillow refuses at twice the limit while opening;
    # between 1x and 2x our own check below refuses with the image's size.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[sniffed]) as im:
                width, height = im.size
                fmt = im.format or sniffed
                if fmt not in FORMATS:
                    raise Refused(
                        f"{name}: unsupported format {fmt} (allowed: JPEG, PNG, HEIC); nothing stored"
                    )
                pixels = width * height
                if pixels > limits.max_pixels:
                    raise _bomb(name, width, height, limits)
                exif = _exif_facts(im)
                preview = _preview(im, fmt)
    except Refused:
        raise
    except (Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
        raise _decode_refusal(name, sniffed, limits, exc) from None
    if sniffed == "PNG":
        _verify_png(name, data)
    return Inspection(
        format=fmt,
        width=width,
        height=height,
        size=len(data),
        captured_at=exif["captured_at"],
        camera=exif["camera"],
        has_gps=exif["has_gps"],
        preview=preview,
    )


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, RuntimeError)
"""What Pillow raises on a damaged file (UnidentifiedImageError is an OSError)."""


def _decode_refusal(name: str, sniffed: str, limits: PhotoLimits, exc: BaseException) -> Refused:
    """The one-line refusal for an image Pillow would not open: a bomb, not an image, or damaged."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, Image.DecompressionBombError):
        return Refused(
            f"{name}: too many pixels to decode safely (decompression bomb guard; "
            f"limit {limits.max_pixels / 1e6:.3g} megapixels); nothing stored"
        )
    if isinstance(exc, UnidentifiedImageError):
        return Refused(f"{name}: not an image, or a {sniffed} file too damaged to read; nothing stored")
    return Refused(f"{name}: {_damage(exc)} {sniffed} file ({_one_line(exc)}); nothing stored")


@dataclass(frozen=True)
class Structure:
    """What a header-level look at an image found (no pixels decoded)."""

    format: str
    width: int
    height: int


def check_structure(name: str, data: bytes, limits: PhotoLimits) -> Structure:
    """A cheap look at bytes whose origin is already authenticated: format, size, pixels, whole file.

    For photos arriving in a sync bundle: their bytes are named by their
    SHA-256 and signed by the registered device that validated them fully
    (`inspect`) on import, so the hub does not decode them again. This still
    refuses what the store must never hold: an unsupported format, more
    pixels than the limit (the bomb guard), a header Pillow cannot parse, a
    JPEG without its end-of-image marker (truncated), a PNG whose chunk CRCs
    fail. Pixels are decoded only when someone first looks at the photo
    (`make_preview`), which then runs the full `inspect`.
    """
    from PIL import Image

    sniffed = _precheck(name, data, limits)
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[sniffed]) as im:
                width, height = im.size
                fmt = im.format or sniffed
    except (Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
        raise _decode_refusal(name, sniffed, limits, exc) from None
    if fmt not in FORMATS:
        raise Refused(f"{name}: unsupported format {fmt} (allowed: JPEG, PNG, HEIC); nothing stored")
    if width * height > limits.max_pixels:
        raise _bomb(name, width, height, limits)
    if width < 1 or height < 1:
        raise Refused(f"{name}: {width}x{height} is not a picture; nothing stored")
    if fmt == "JPEG" and not _jpeg_complete(data):
        raise Refused(
            f"{name}: truncated JPEG file (no end-of-image marker after the image data); nothing stored"
        )
    if fmt == "PNG":
        _verify_png(name, data)
    return Structure(fmt, width, height)


def _jpeg_complete(data: bytes) -> bool:
    """Whether the end-of-image marker follows the main image's scan data.

    Walks the marker segments (by their lengths, so an embedded EXIF
    thumbnail's markers are skipped) to the first start-of-scan, then looks
    for FF D9 after it: entropy-coded data never contains FF D9 (an FF there
    is always followed by 00 or a restart marker), so the first one found is
    the real end. Bytes after it (phone makers' trailers) are allowed.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return False
        if marker == 0xDA:
            # Any FF D9 after the scan header will do, so look from the end:
            # a whole JPEG ends with it (or with a short trailer), where a
            # forward search crawled through megabytes of FF 00 stuffing.
            return data.rfind(b"\xff\xd9", pos + 2 + length) != -1
        pos += 2 + length
    return False


def _bomb(name: str, width: int, height: int, limits: PhotoLimits) -> Refused:
    return Refused(
        f"{name}: {width}x{height} is {width * height / 1e6:.3g} megapixels, "
        "more than the limit of "
        f"{limits.max_pixels / 1e6:.3g} (decompression bomb guard); nothing stored"
    )


def _damage(exc: BaseException) -> str:
    text = str(exc).lower()
    return "truncated" if "truncated" in text or "end of file" in text else "corrupt"


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """A decoder's message on one line (libheif's end with newlines), bounded."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _refuse_unknown(name: str, data: bytes) -> NoReturn:
    """Say whether it is some other image format or not an image at all."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                other = im.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        other = None
    except Image.DecompressionBombError:
        other = "oversized image"
    if other:
        raise Refused(f"{name}: unsupported format {other} (allowed: JPEG, PNG, HEIC); nothing stored")
    raise Refused(f"{name}: not an image (not JPEG, PNG or HEIC); nothing stored")


def _verify_png(name: str, data: bytes) -> None:
    """PNG chunk CRCs: decoding can succeed over a damaged ancillary chunk."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            im.verify()
    except Exception as exc:
        raise Refused(f"{name}: corrupt PNG file ({_one_line(exc)}); nothing stored") from None


# -- EXIF ------------------------------------------------------------------------------

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_DATETIME_ORIGINAL, _OFFSET_ORIGINAL = 0x9003, 0x9011
_ORIENTATION = 0x0112
_EXIF_TIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    # EXIF text is machine-written and often NUL-padded; anything unprintable in it
    # (controls, bidi, zero-width) is dropped: a camera's name never refuses the photo.
    value = "".join(c for c in value if c.isprintable()).strip()
    return value or None


def capture_time(raw: Any, offset: Any = None) -> str | None:
    """EXIF "2020:03:16 09:12:00" (+ OffsetTimeOriginal) as ISO 8601, or None if absent/bad."""
    text = _text(raw)
    if not text:
        return None
    m = _EXIF_TIME.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61) or y < 1900:
        return None
    iso = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{min(s, 59):02d}"
    off = _text(offset)
    if off and _OFFSET.match(off):
        iso += off
    return iso


def _exif_facts(im: PILImage.Image) -> dict[str, Any]:
    facts: dict[str, Any] = {"captured_at": None, "camera": None, "has_gps": False}
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block is not a broken photo
        return facts
    if not exif:
        return facts
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    facts["captured_at"] = capture_time(
        sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME), sub.get(_OFFSET_ORIGINAL)
    )
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    if model and make and not model.lower().startswith(make.lower()):
        model = f"{make} {model}"
    camera = model or make
    facts["camera"] = camera[:120] if camera else None
    try:
        facts["has_gps"] = bool(exif.get_ifd(_GPS_IFD))
    except Exception:
        facts["has_gps"] = _GPS_IFD in exif
    return facts


# -- preview ---------------------------------------------------------------------------


def _preview(im: PILImage.Image, fmt: str) -> Preview:
    """Decode (scaled, for JPEG), shrink, orient, and re-encode with no metadata."""
    from PIL import Image

    try:
        orientation = int(im.getexif().get(_ORIENTATION) or 1)
    except Exception:
        orientation = 1
    if fmt == "JPEG":
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly; every entropy-coded
        # byte is still read, so truncation is still detected by load().
        im.draft("RGB", (PREVIEW_EDGE, PREVIEW_EDGE))
    im.load()
    small = im if im.mode in ("RGB", "L") else im.convert("RGBA" if "A" in im.getbands() else "RGB")
    if small.mode == "RGBA":
        flat = Image.new("RGB", small.size, (255, 255, 255))
        flat.paste(small, mask=small.getchannel("A"))
        small = flat
    small = small.copy() if small is im else small
    small.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    transpose = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    if transpose is not None:
        small = small.transpose(transpose)
    # A fresh image from raw pixels carries no info dict: no EXIF, GPS, ICC or XMP.
    clean = Image.frombytes(small.mode, small.size, small.tobytes())
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=PREVIEW_QUALITY, optimize=False)
    return Preview(out.getvalue(), clean.width, clean.height)


def make_preview(name: str, data: bytes, limits: PhotoLimits | None = None) -> Preview:
    """Derive the preview of stored original bytes (already verified by hash)."""
    return inspect(name, data, limits or PhotoLimits(max_bytes=max(len(data), 1))).preview
