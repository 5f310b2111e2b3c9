"""The lit material (a Principled BSDF subset) and per-corner shading frames,
as plain data (issue 9: lit appearance).

The addon reads them from Blender (`addon/material_io.py`). Each channel is
kept apart, with its Blender image name, because each image-backed channel is
its own parameter group. Images are float32 and bottom-up, like
`image.pixels`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ColorChannel:
    """Base colour: an image or a constant linear RGB."""
    image: np.ndarray | None = None  # (h, w, 4) float32, bottom-up, stored encoding
    srgb: bool = False  # the image's values are sRGB-encoded (decode before shading)
    constant: tuple = (0.8, 0.8, 0.8)  # linear RGB, used when image is None
    image_name: str | None = None

    @property
    def is_image(self) -> bool:
        return self.image is not None


@dataclass
class ScalarChannel:
    """Roughness or metallic: a Non-Color image (its first channel) or a constant."""
    image: np.ndarray | None = None  # (h, w) float32, bottom-up
    constant: float = 0.0
    image_name: str | None = None

    @property
    def is_image(self) -> bool:
        return self.image is not None


@dataclass
class NormalChannel:
    """A tangent-space normal map, as stored in [0, 1] (0.5, 0.5, 1 is flat)."""
    image: np.ndarray  # (h, w, 3) float32, bottom-up
    strength: float = 1.0  # the Normal Map node's Strength
    image_name: str | None = None


@dataclass
class LitMaterial:
    base_color: ColorChannel = field(default_factory=ColorChannel)
    roughness: ScalarChannel = field(default_factory=lambda: ScalarChannel(constant=0.5))
    metallic: ScalarChannel = field(default_factory=ScalarChannel)
    normal: NormalChannel | None = None
    specular_ior_level: float = 0.5  # Principled "Specular IOR Level" (0.5: F0 from the IOR alone)
    ior: float = 1.5
    distribution: str = "MULTI_GGX"  # the Principled node's: GGX or MULTI_GGX
    uv_map: str | None = None  # the UV map every image uses (None: the render-active one)
    name: str = ""  # the Blender material

    def image_channels(self) -> dict:
        """{channel name: image array} for the image-backed channels."""
        out = {}
        for key in ("base_color", "roughness", "metallic"):
            channel = getattr(self, key)
            if channel.is_image:
                out[key] = channel.image
        if self.normal is not None:
            out["normal"] = self.normal.image
        return out


@dataclass
class CornerFrames:
    """World-space shading frames at each triangle corner, in the order of
    `MeshArrays.triangles` / `corner_uvs` (Blender's loop triangles)."""
    normals: np.ndarray  # (T, 3, 3) float32, unit
    tangents: np.ndarray  # (T, 3, 4) float32: unit MikkTSpace tangent xyz, bitangent sign w (+-1)
    # Each triangle's polygon, whose normal Blender's face normal is (engine/frames.py): its vertices
    # in order, as `polygons[0][t]` (start) and `[1][t]` (count) into the vertex list `polygons[2]`,
    # with their UVs in `polygons[3]` (L, 2); None: every triangle is its own polygon
    polygons: tuple | None = None

    def __post_init__(self):
        t = len(self.normals)
        if self.normals.shape != (t, 3, 3) or self.tangents.shape != (t, 3, 4):
            raise ValueError(f"corner frames: normals {self.normals.shape}, tangents {self.tangents.shape}")
        if self.polygons is not None and (len(self.polygons[0]) != t or len(self.polygons[1]) != t):
            raise ValueError(f"corner frames: polygons for {len(self.polygons[0])} triangles")

    def bitangents(self) -> np.ndarray:
        """(T, 3, 3): sign * cross(normal, tangent), as Blender's Normal Map node builds it."""
        return self.tangents[..., 3:4] * np.cross(self.normals, self.tangents[..., :3])
