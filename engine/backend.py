"""The GPU backend interface the engine drives.

A backend owns textures, compiles `gpu_kernels` specs and runs them. The
engine never sees a backend's native objects except as opaque handles.
Array convention everywhere: float32, shape (height, width, channels), row 0
at the bottom (OpenGL and Blender images agree on this).

`constants` of a dispatch or draw: the spec's push constants by name, and,
for a spec with a `uniform_block` (gpu_kernels.UniformBlock: what would pass
128 bytes of push constants), each of its members' four values by member
name; the backend packs those (`UniformBlock.pack`) into a uniform buffer of
its own and binds it at the block's slot.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Backend(Protocol):
    name: str

    def texture(self, width: int, height: int, fmt: str, data: np.ndarray | None = None) -> Any:
        """A new texture; float formats take `data`, integer ones start at 0."""

    def clear(self, texture: Any, value: float | int = 0) -> None:
        """Set every texel (all channels) of `texture` to `value`."""

    def read(self, texture: Any) -> np.ndarray:
        """Float texture -> (h, w, channels) float32 array."""

    def dispatch(self, spec, groups: tuple, images: dict, samplers: dict, constants: dict) -> None:
        """Run a compute kernel over `groups` work groups."""

    def mesh_batch(self, vertex_index: np.ndarray, corner_uv: np.ndarray) -> Any:
        """Unindexed triangle list: per-corner vertex index (int) and UV (a
        lit fit's shading frames come from a texture, by gl_VertexID)."""

    def render_target(self, width: int, height: int, pair: bool = False) -> Any:
        """Colour (RGBA32F), triangle ID (R32I) and UV (RGBA32F) with a depth
        buffer; `pair`: a fourth attachment, R-'s colour (RASTERIZE_PAIR)."""

    def target_textures(self, target: Any) -> dict:
        """{'color', 'id', 'uv'} textures of a render target, for samplers
        (and 'color_minus' for a pair target)."""

    def draw(self, spec, target: Any, batch: Any, samplers: dict, constants: dict) -> None:
        """Clear `target` and rasterize `batch` into it with a depth test."""

    def finish(self) -> None:
        """Wait until all submitted GPU work is done (for timing)."""
