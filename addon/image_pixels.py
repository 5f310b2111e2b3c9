"""Blender image pixels: reading, writing, colour encoding, resampling, and
what a save of the .blend keeps of pixels written into an image.

Colour encoding: `image.pixels` values are sRGB-encoded for an 8-bit sRGB
image, linear for float or Non-Color images (`image_encoding`); the sRGB
curves themselves are `engine.color`'s.
"""
from __future__ import annotations

import numpy as np

from ..engine.color import linear_to_srgb, srgb_to_linear
from .errors import InputError


# Colour encoding --------------------------------------------------------------
def image_encoding(image) -> str:
    """'srgb' or 'linear': how `image.pixels` values are encoded."""
    if image.is_float:
        return "linear"  # Blender keeps float buffers scene-linear
    name = image.colorspace_settings.name
    if name == "sRGB":
        return "srgb"
    if image.colorspace_settings.is_data or "linear" in name.lower() or name in ("Raw", "Non-Color"):
        return "linear"
    raise InputError(f"image '{image.name}' uses colour space '{name}'; "
                     "SGE Optimizer supports sRGB, linear and Non-Color images")


def straight_from_linear(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Premultiplied linear RGBA (a render) -> straight-alpha RGBA in `encoding`."""
    alpha = pixels[..., 3:4]
    rgb = np.where(alpha > 0, pixels[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    rgb = convert_encoding(np.clip(rgb, 0, 1).astype(np.float32), "linear", encoding)
    return np.concatenate([rgb, alpha], -1).astype(np.float32)


def convert_encoding(rgb: np.ndarray, source: str, dest: str) -> np.ndarray:
    if source == dest:
        return rgb
    return srgb_to_linear(rgb) if dest == "linear" else linear_to_srgb(rgb)


# Images -------------------------------------------------------------------------
def stored_pixels(image) -> np.ndarray:
    """The image's pixels as Blender stores them: flat float32, bottom-up."""
    flat = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(flat)
    return flat


SOURCES = {"TILED": "tiled image (UDIM)", "SEQUENCE": "image sequence", "MOVIE": "movie",
           "VIEWER": "viewer image (Render Result or Compositor)"}  # what read_image_pixels refuses


def read_image_pixels(image, what: str) -> np.ndarray:
    """(h, w, 4) float32 pixels of a Blender image, bottom-up."""
    if image.source not in {"FILE", "GENERATED"}:
        kind = SOURCES.get(image.source, f"'{image.source.lower()}' image")
        raise InputError(f"{what} '{image.name}' is a {kind}; use a single image")
    width, height = image.size
    channels = image.channels
    if width == 0 or height == 0 or not image.has_data and len(image.pixels) == 0:
        where = f" from '{image.filepath}'" if image.filepath else ""
        raise InputError(f"{what} '{image.name}' could not be read{where} (missing or unreadable file?)")
    pixels = stored_pixels(image).reshape(height, width, channels)
    if channels != 4:
        full = np.ones((height, width, 4), np.float32)
        full[..., :min(channels, 3)] = pixels[..., :3]
        if channels == 1:
            full[..., 1] = full[..., 2] = pixels[..., 0]
        pixels = full
    if not np.all(np.isfinite(pixels)):
        raise InputError(f"{what} '{image.name}' contains non-finite pixel values")
    return pixels


def write_image_pixels(image, pixels: np.ndarray) -> None:
    pixels = np.asarray(pixels, np.float32)
    width, height = image.size
    if pixels.shape != (height, width, 4) or image.channels not in (3, 4):
        raise ValueError(f"cannot write {pixels.shape} pixels into '{image.name}' ({width}x{height}x{image.channels})")
    pixels = pixels[..., : image.channels]
    if not np.all(np.isfinite(pixels)):
        raise ValueError(f"refusing to write non-finite pixels into '{image.name}'")
    image.pixels.foreach_set(pixels.ravel())
    image.update()


def keep_in_blend(image) -> str:
    """After pixels were written into `image`: where will a save of the .blend
    find them? A packed image is repacked here, because a save writes the
    packed bytes, not the edited buffer (it came back unchanged otherwise).
    Returns 'packed', 'file' (changed in memory only; Image > Save writes the
    file) or 'generated_packed' (a save drops a generated image's pixels, so
    it is packed now, in the run's undo step)."""
    if image.packed_file is not None:
        image.pack()
        return "packed"
    if image.source == "GENERATED":
        image.pack()
        return "generated_packed"
    return "file"


def storage_state(image) -> tuple:
    """What `keep_in_blend` changes (source, file path, packed bytes), for
    `undo_keep_in_blend`."""
    packed = image.packed_file
    return image.source, image.filepath_raw, bytes(packed.data) if packed is not None else None


def undo_keep_in_blend(image, state: tuple) -> None:
    """Put back what `keep_in_blend` changed: the packed bytes a save would
    write (restoring `image.pixels` alone leaves the optimized ones packed).
    Call before writing the original pixels back: a generated image
    regenerates its buffer here."""
    source, filepath, packed = state
    if packed is not None:
        image.pack(data=packed, data_len=len(packed))
    elif image.packed_file is not None:
        image.unpack(method="REMOVE")
        image.source, image.filepath_raw = source, filepath


def storage_note(image_name: str, storage: str) -> str:
    """What a user must do to keep optimized pixels, or '' when nothing."""
    if storage == "file":
        return f"'{image_name}' changed in memory only: Image > Save writes it to its file"
    if storage == "generated_packed":
        return f"'{image_name}' was a generated image: packed into the .blend so that a save keeps it"
    return ""


def resample(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (h, w, c) to (height, width, c): box filter down, bilinear up."""
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels.astype(np.float32)
    fy, fx = max(h // height, 1), max(w // width, 1)
    if fy > 1 or fx > 1:
        h2, w2 = (h // fy) * fy, (w // fx) * fx
        pixels = pixels[:h2, :w2].reshape(h2 // fy, fy, w2 // fx, fx, -1).mean(axis=(1, 3))
        h, w = pixels.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    # float32 weights: float64 ones would double every full-size temporary.
    wy = (ys - y0).astype(np.float32)[:, None, None]
    wx = (xs - x0).astype(np.float32)[None, :, None]
    top = pixels[y0][:, x0] * (1 - wx) + pixels[y0][:, x1] * wx
    bottom = pixels[y1][:, x0] * (1 - wx) + pixels[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)
