"""addon/target_setup.py: images that survive a save, on the real Blender."""
from __future__ import annotations

import struct
import zlib

import bpy
import numpy as np
import pytest

from sge_optimizer.addon import image_pixels, target_setup


def decode_png(data: bytes) -> np.ndarray:
    """A reference decoder for what encode_png writes (RGBA, filter 0), bottom-up floats."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(tag + body)
        chunks[tag] = chunks.get(tag, b"") + body
        pos += 12 + length
    w, h, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert colour_type == 6 and set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, -1)
    assert np.all(raw[:, 0] == 0)
    dtype, top = (">u1", 255) if depth == 8 else (">u2", 65535)
    values = np.frombuffer(raw[:, 1:].tobytes(), dtype).reshape(h, w, 4)
    return values[::-1].astype(np.float64) / top


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_encode_png_matches_a_reference_decoder(bit_depth):
    rng = np.random.default_rng(3)
    pixels = rng.uniform(-0.2, 1.2, (5, 7, 4)).astype(np.float32)
    pixels[0, 0, 0] = np.nan
    got = decode_png(target_setup.encode_png(pixels, bit_depth))
    want = np.clip(np.nan_to_num(pixels), 0, 1)
    np.testing.assert_allclose(got, want, atol=0.5 / (255 if bit_depth == 8 else 65535) + 1e-7)


@pytest.mark.parametrize("linear", [False, True], ids=["srgb-8bit", "linear-16bit"])
def test_new_image_is_packed_and_survives_a_save(empty_scene, tmp_path, linear):
    rng = np.random.default_rng(4)
    pixels = rng.random((6, 9, 4)).astype(np.float32)
    image = target_setup.new_image("Saved", pixels, linear=linear)
    assert image.packed_file is not None and tuple(image.size) == (9, 6)
    assert image_pixels.image_encoding(image) == ("linear" if linear else "srgb")
    tolerance = 1e-4 if linear else 0.5 / 255 + 1e-6
    np.testing.assert_allclose(image_pixels.read_image_pixels(image, "image"), pixels, atol=tolerance)
    image.use_fake_user = True  # an image with no users is not saved
    path = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    bpy.ops.wm.open_mainfile(filepath=str(path))
    image = bpy.data.images["Saved"]
    assert image_pixels.image_encoding(image) == ("linear" if linear else "srgb")
    np.testing.assert_allclose(image_pixels.read_image_pixels(image, "image"), pixels, atol=tolerance)


def test_a_tiled_image_is_refused_in_plain_words(empty_scene):
    """A UDIM image is named as such ('is a tiled' read oddly)."""
    from sge_optimizer.addon.errors import InputError

    image = bpy.data.images.new("Tiles", 8, 8, tiled=True)
    with pytest.raises(InputError) as err:
        image_pixels.read_image_pixels(image, "base-colour image")
    assert str(err.value) == "base-colour image 'Tiles' is a tiled image (UDIM); use a single image"
