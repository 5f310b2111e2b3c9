"""Plain arrays the engine works on (the settings of a run: engine/settings.py).

Colour encoding: the texture holds the image's own stored values (sRGB-
encoded for an sRGB image, `texture_srgb`); renders and targets are scene-
linear RGBA, premultiplied by alpha, clamped to [0, 1]: R decodes texels
before it blends them, as Blender's engines do. Rows start at the bottom,
as in Blender images and OpenGL.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The settings of a run live in engine/settings.py; these names stay importable from here.
from .settings import DEFAULT_QUALITY, QUALITY_PRESETS, Settings, quality_preset  # noqa: F401


@dataclass
class MeshArrays:
    positions: np.ndarray  # (V, 3) float32, world space
    triangles: np.ndarray  # (T, 3) int32 vertex indices
    corner_uvs: np.ndarray  # (T, 3, 2) float32 per-corner UV

    def __post_init__(self):
        self.positions = np.ascontiguousarray(self.positions, np.float32).reshape(-1, 3)
        self.triangles = np.ascontiguousarray(self.triangles, np.int32).reshape(-1, 3)
        self.corner_uvs = np.ascontiguousarray(self.corner_uvs, np.float32).reshape(-1, 3, 2)

    @property
    def bounding_diagonal(self) -> float:
        span = self.positions.max(axis=0) - self.positions.min(axis=0)
        return float(np.linalg.norm(span)) or 1.0


@dataclass
class View:
    name: str
    view_projection: np.ndarray  # (4, 4) float32: projection @ world-to-camera
    target: np.ndarray  # (H, W, 4) float32 premultiplied RGBA, bottom-up


@dataclass
class LitScene:
    """What a lit fit renders the optimized base colour under (issue 9): the
    lights, each corner's shading frame, the fixed material maps and the
    cameras' positions. See gpu_kernels/lit_shading.glsl for the model."""
    lighting: object  # engine.lighting.Lighting
    frames: object  # engine.materials.CornerFrames, in MeshArrays' corner order
    camera_positions: list  # world position of each view's camera
    # (h, w, 4): roughness, metallic, specular IOR level per texel (a 1 x 1 map for constants)
    material: np.ndarray = field(default_factory=lambda: np.array([[[0.5, 0.0, 0.5, 0.0]]], np.float32))
    normal_map: np.ndarray | None = None  # (h, w, 3) tangent space as stored in [0, 1]; None: flat
    normal_strength: float = 1.0

    @classmethod
    def from_material(cls, material, lighting, frames, camera_positions) -> "LitScene":
        """The fixed maps of an `engine.materials.LitMaterial` (all but its base colour)."""
        channels = (material.roughness, material.metallic)
        sizes = {c.image.shape[:2] for c in channels if c.is_image}
        if len(sizes) > 1:
            raise ValueError(f"roughness and metallic images differ in size: {sorted(sizes)}")
        h, w = sizes.pop() if sizes else (1, 1)
        packed = np.zeros((h, w, 4), np.float32)
        for i, c in enumerate(channels):
            packed[..., i] = c.image if c.is_image else c.constant
        packed[..., 2] = material.specular_ior_level
        normal = material.normal
        return cls(lighting, frames, list(camera_positions), packed,
                   None if normal is None else normal.image, 1.0 if normal is None else normal.strength)


@dataclass
class SceneArrays:
    mesh: MeshArrays
    texture: np.ndarray  # (th, tw, 4) float32 in [0, 1], bottom-up
    views: list = field(default_factory=list)
    texture_srgb: bool = False  # the texture's values are sRGB-encoded
    lit: LitScene | None = None  # None: the texture is rendered unlit (Workbench's flat texture colour)

    @property
    def resolution(self) -> tuple:
        h, w = self.views[0].target.shape[:2]
        return w, h
