"""Real image files for photo tests, generated with Pillow (no binary fixtures)."""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

EXIF_IFD, GPS_IFD = 0x8769, 0x8825


def noise(size: tuple[int, int] = (320, 240), seed: int = 1) -> Image.Image:
    """A noisy image: real entropy-coded data, so truncation is detectable."""
    rnd = random.Random(seed)
    return Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))


def exif(
    *,
    taken: str | None = "2020:03:16 09:12:00",
    offset: str | None = None,
    make: str | None = "Apple",
    model: str | None = "iPhone 11",
    gps: bool = False,
) -> Image.Exif:
    ex = Image.Exif()
    if make:
        ex[0x010F] = make
    if model:
        ex[0x0110] = model
    if taken:
        ex.get_ifd(EXIF_IFD)[0x9003] = taken
    if offset:
        ex.get_ifd(EXIF_IFD)[0x9011] = offset
    if gps:
        g = ex.get_ifd(GPS_IFD)
        g[1] = "N"
        g[2] = (30.0, 35.0, 24.0)
        g[3] = "E"
        g[4] = (114.0, 17.0, 53.0)
    return ex


def jpeg_bytes(seed: int = 1, size: tuple[int, int] = (320, 240), ex: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    kw = {"exif": ex} if ex is not None else {}
    noise(size, seed).save(out, format="JPEG", quality=90, **kw)
    return out.getvalue()


def png_bytes(seed: int = 1, size: tuple[int, int] = (200, 150)) -> bytes:
    out = io.BytesIO()
    noise(size, seed).save(out, format="PNG")
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jpeg(path: Path, seed: int = 1, **kw) -> Path:  # type: ignore[no-untyped-def]
    return write(path, jpeg_bytes(seed, **kw))


def png(path: Path, seed: int = 1) -> Path:
    return write(path, png_bytes(seed))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A ~100-byte PNG that claims side x side pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )
    return write(path, data)


def other_format(path: Path, fmt: str) -> Path:
    out = io.BytesIO()
    noise((64, 48)).save(out, format=fmt)
    return write(path, out.getvalue())
