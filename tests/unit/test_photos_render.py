"""Half-block rendering: two pixels per cell, colours preserved, fits the space given."""

from __future__ import annotations

import io

from PIL import Image
from rich.console import Console
from wardcrf.photos.render import UPPER_HALF, HalfBlockImage


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="PNG")  # lossless: exact colours
    return out.getvalue()


def test_top_and_bottom_pixels_become_foreground_and_background() -> None:
    im = Image.new("RGB", (4, 2))
    for x in range(4):
        im.putpixel((x, 0), (255, 0, 0))
        im.putpixel((x, 1), (0, 0, 255))
    console = Console(width=20, color_system="truecolor", record=True, file=io.StringIO())
    console.print(HalfBlockImage(_jpeg(im), max_width=4, max_rows=1))
    segments = list(
        HalfBlockImage(_jpeg(im), max_width=4, max_rows=1).__rich_console__(console, console.options)
    )
    cells = [s for s in segments if s.text == UPPER_HALF]
    assert len(cells) == 4
    assert all(s.style and s.style.color and s.style.color.triplet == (255, 0, 0) for s in cells)
    assert all(s.style and s.style.bgcolor and s.style.bgcolor.triplet == (0, 0, 255) for s in cells)


def test_large_image_is_scaled_to_fit() -> None:
    im = Image.new("RGB", (1200, 900), (10, 120, 30))
    console = Console(width=200, color_system="truecolor", file=io.StringIO())
    lines = [
        line for line in console.render_lines(HalfBlockImage(_jpeg(im), max_width=60, max_rows=20), pad=False)
    ]
    assert len(lines) <= 20
    assert max(sum(len(s.text) for s in line) for line in lines) <= 60
