"""Thumbnails of uploaded images: at most 320 px on the long side, JPEG, stored in the `thumbnails` bucket.

An image gets one when it is uploaded for a project (a `project_id`) or into `brand-kits`. The thumbnail of
`{name}.png` for project `p1` is `p1/{name}_thumb.jpg` (the seed's `{projectId}/{clipId}_thumb.jpg`), and of
`{folders}/{name}.png` it is `p1/{folders}/{name}_thumb.jpg`, so two images never share one; a brand-kit asset
`logos/acme.png` gets `brand-kits/logos/acme_thumb.jpg`. A thumbnail names its source (metadata.source): it never
replaces a file it did not make, expires with its source and is deleted with it.

Decompression bombs: Pillow refuses images over twice Image.MAX_IMAGE_PIXELS outright, and anything over it is
refused here before a pixel is decoded. JPEGs are decoded at a reduced scale (draft mode), so a large photo costs a
few megabytes of memory, not hundreds.
"""
from __future__ import annotations

from pathlib import Path

from marshmallow import ValidationError
from PIL import Image, ImageOps

from storage.paths import clean_path

MAX_SIDE = 320
MAX_PIXELS = 40_000_000
# Pillow's own guard: it warns above this and raises above twice this, at open time, before decoding.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
THUMBNAIL_BUCKET = "thumbnails"
THUMBNAIL_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]


class ThumbnailError(Exception):
    """The image could not be made into a thumbnail (unreadable, or too many pixels)."""


def wanted(bucket_id: str, content_type: str, project_id: str | None) -> bool:
    """Whether an object of this bucket, type and project gets a thumbnail."""
    if bucket_id == THUMBNAIL_BUCKET or content_type not in THUMBNAIL_TYPES:
        return False
    return bucket_id == "brand-kits" or bool(project_id)


def target_path(bucket_id: str, path: str, project_id: str | None) -> str:
    """The thumbnail's path in the thumbnails bucket, below the organization's folder. Raises ThumbnailError when
    that is no valid path (the source's path is too long to take the suffix)."""
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    if project_id:
        candidate = f"{project_id}/{stem}_thumb.jpg"
    else:
        candidate = f"{bucket_id}/{stem}_thumb.jpg"
    try:
        return clean_path(candidate, "thumbnail")
    except ValidationError as exc:
        reasons = "; ".join(exc.normalized_messages()["thumbnail"])
        raise ThumbnailError(f"no thumbnail path fits: {reasons}") from None


def make_thumbnail(source: Path, dest: Path) -> tuple[int, int]:
    """Write a JPEG thumbnail of the image `source` to `dest`; returns its (width, height).

    Raises ThumbnailError for data Pillow cannot read (whatever Pillow raises: corrupt metadata alone can make it
    raise SyntaxError) and for images over MAX_PIXELS (decompression bombs).
    """
    try:
        with Image.open(source, formats=_FORMATS) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ThumbnailError(f"{image.width}x{image.height} pixels is more than a thumbnail is made from")
            image.draft("RGB", (MAX_SIDE * 2, MAX_SIDE * 2))
            oriented = ImageOps.exif_transpose(image)
            oriented.thumbnail((MAX_SIDE, MAX_SIDE))
            if oriented.mode in ("RGBA", "LA", "P"):
                rgba = oriented.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                oriented = flat
            elif oriented.mode != "RGB":
                oriented = oriented.convert("RGB")
            oriented.save(dest, "JPEG", quality=82, optimize=True)
            return oriented.size
    except ThumbnailError:
        raise
    except Image.DecompressionBombError as exc:
        raise ThumbnailError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises SyntaxError, struct.error and more on corrupt data
        raise ThumbnailError(f"unreadable image: {type(exc).__name__}") from None
