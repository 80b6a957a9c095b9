"""Images (``image_url`` parts): same fetch path as videos, decoded with Pillow in the pool.

The header is read first (``Image.open`` does not decode pixels) and images over
``max_image_pixels`` are refused before decoding; the frame is then resized to the budget's
geometry with ``smart_resize`` (qwen-vl-utils semantics, bicubic).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import IO

import numpy as np
import numpy.typing as npt

from videomodel_server.budget import FamilyGeometry, GeometryError, VideoBudget, smart_resize

from .errors import InvalidImage, MediaOverBudget, TooLarge


@dataclass(frozen=True)
class ImageBudget:
    """Per-image pixel bounds after resizing and the family's pixels-per-token side."""

    min_pixels: int
    max_pixels: int
    factor: int

    @classmethod
    def from_budget(cls, budget: VideoBudget, geometry: FamilyGeometry) -> ImageBudget:
        """The image part of a declared budget, family defaults filled in."""
        resolved = budget.resolved(geometry)
        assert resolved.image_min_pixels is not None and resolved.image_max_pixels is not None
        return cls(resolved.image_min_pixels, resolved.image_max_pixels, geometry.factor)


@dataclass(frozen=True)
class DecodedImage:
    pixels: npt.NDArray[np.uint8]
    """(H, W, 3) uint8 RGB at the resized geometry."""
    source_width: int
    source_height: int


def decode_image(file: IO[bytes], budget: ImageBudget, max_image_pixels: int) -> DecodedImage:
    """Decode and resize one image (worker process only)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = max_image_pixels
    try:
        with warnings.catch_warnings():
            # Our own check below names the limit; PIL's hard error (at 2x) stays as a backstop.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(file)
            width, height = image.size
            if width * height > max_image_pixels:
                raise TooLarge(
                    f"the image is {width}x{height} ({width * height / 1e6:.1f} megapixels); at most "
                    f"{max_image_pixels / 1e6:.1f} megapixels are accepted (max_image_pixels)"
                )
            try:
                h, w = smart_resize(height, width, budget.factor, budget.min_pixels, budget.max_pixels)
            except GeometryError:
                raise MediaOverBudget(f"an image of {width}x{height} cannot be resized within the budget") from None
            image = ImageOps.exif_transpose(image)
            if image.size != (width, height):  # EXIF rotation swapped the sides
                h, w = w, h
            rgb = image.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
            return DecodedImage(np.asarray(rgb, dtype=np.uint8), width, height)
    except Image.DecompressionBombError:
        raise TooLarge(f"the image has more than {max_image_pixels} pixels (max_image_pixels)") from None
    except UnidentifiedImageError:
        raise InvalidImage("the file is not an image this server can read") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise InvalidImage("the image is corrupt or truncated") from None
