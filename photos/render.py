"""Draw a photo in a terminal with Unicode half blocks (rich renderable).

Each character cell shows two vertically stacked pixels: the upper one as
the foreground colour of "▀", the lower one as the background. Works in any
true-colour terminal and over SSH, needs no graphics protocol, and is
deterministic (testable). Terminals with Sixel or the Kitty protocol can use
textual-image instead (`wardcrf photo show --graphics`). Textual itself is
never imported here.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from rich.style import Style

if TYPE_CHECKING:
    from PIL import Image as PILImage

UPPER_HALF = "▀"


class HalfBlockImage:
    """A rich renderable: `console.print(HalfBlockImage(jpeg_bytes, max_rows=30))`."""

    def __init__(self, data: bytes, *, max_width: int | None = None, max_rows: int | None = None) -> None:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (1024, 1024))
            self._image: PILImage.Image = im.convert("RGB")
        self.max_width = max_width
        self.max_rows = max_rows

    def fitted(self, width: int, rows: int) -> PILImage.Image:
        """The image scaled to at most `width` cells by `rows` cells (2 pixels per cell)."""
        from PIL import Image

        im = self._image.copy()
        im.thumbnail((max(1, width), max(2, rows * 2)), Image.Resampling.LANCZOS)
        if im.height % 2:  # pad to an even pixel height with black
            padded = Image.new("RGB", (im.width, im.height + 1))
            padded.paste(im, (0, 0))
            im = padded
        return im

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        width = min(options.max_width, self.max_width or options.max_width)
        rows = self.max_rows or max(4, (options.height or console.height) - 4)
        im = self.fitted(width, rows)
        px = im.load()
        assert px is not None
        for y in range(0, im.height, 2):
            for x in range(im.width):
                top = cast("tuple[int, int, int]", px[x, y])
                bottom = cast("tuple[int, int, int]", px[x, y + 1])
                yield Segment(
                    UPPER_HALF,
                    Style(
                        color=f"rgb({top[0]},{top[1]},{top[2]})",
                        bgcolor=f"rgb({bottom[0]},{bottom[1]},{bottom[2]})",
                    ),
                )
            yield Segment.line()


def graphics_renderable(data: bytes) -> object:
    """textual-image's renderable (Sixel / Kitty / half cells, detected at import)."""
    try:
        from textual_image.renderable import Image as TIImage
    except ImportError:
        from wardcrf.errors import UsageError

        raise UsageError(
            "drawing in real pixels (--graphics) needs the textual-image package (pip install textual-image); "
            "without it the photo is drawn with half blocks"
        ) from None
    from PIL import Image

    return TIImage(Image.open(io.BytesIO(data)))
