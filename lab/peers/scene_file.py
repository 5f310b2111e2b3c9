"""The fitting task handed to a peer renderer, as one .npz file (numpy only).

Both sides of a side-by-side run read the same file, so they fit the same
mesh, texture resolution, cameras and target images.

Conventions (those of the SGE engine):
- world space is Blender's: Z up;
- images and textures are (rows, cols, 4) float32 RGBA in [0, 1], premultiplied,
  row 0 at the BOTTOM (OpenGL / Blender order); texture coordinate (0, 0) is the
  bottom-left corner of texel row 0;
- cameras: OpenGL look-at (eye, centre, up; the camera looks down -Z, Y up on
  screen) and a perspective with horizontal field of view `fov_x` (radians),
  square pixels; pixel centres are sampled (no anti-aliasing).

Arrays:
  positions_init (V, 3)    start mesh (welded vertices)
  triangles      (T, 3)    int32 vertex indices
  corner_uvs     (T, 3, 2) per-corner UVs (they jump at UV seams)
  texture_init   (th, tw, 4)
  targets        (N, H, W, 4)
  eyes, centres, ups (N, 3)
  fov_x, near, far  scalars
  truth_positions (V, 3), truth_texture (th, tw, 4): what rendered the targets
  (for reporting only; a fitter must not read them)
"""
from __future__ import annotations

import numpy as np

FIELDS = ("positions_init", "triangles", "corner_uvs", "texture_init", "targets",
          "eyes", "centres", "ups", "fov_x", "near", "far", "truth_positions", "truth_texture")


def save_scene(path, **arrays) -> None:
    missing = [name for name in FIELDS if name not in arrays]
    if missing:
        raise ValueError(f"scene file lacks {missing}")
    np.savez(path, **{name: np.asarray(arrays[name]) for name in FIELDS})


def load_scene(path) -> dict:
    with np.load(path) as data:
        scene = {name: data[name] for name in FIELDS}
    for name in ("fov_x", "near", "far"):
        scene[name] = float(scene[name])
    return scene
