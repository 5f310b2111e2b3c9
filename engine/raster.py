"""R: the rasterizer of the fit's parameters into colour, triangle-ID and
UV targets, plain or perturbed (theta+ / theta-), unlit or lit."""
from __future__ import annotations

import numpy as np

from .. import gpu_kernels as K
from .frames import ShadingFrames
from .samples import jittered
from .schedule import SubStep
from .shadows import ShadowMaps, tile_for


class Rasterizer:
    """The mesh batch, the lit fit's fixed inputs (lights, cameras) and its
    shading frames (`frames`, engine/frames.py ShadingFrames: recomputed
    from the positions drawn when they move), and the render targets:
    `plus`, `minus`, and `pair` (R+ and R- in one draw, RASTERIZE_PAIR, for a
    sub-step whose positions do not move)."""

    def __init__(self, backend, scene, params, seed: int, with_pair: bool, material_channels: int = 0,
                 frames=None):
        self.backend, self.scene, self.params, self.seed = backend, scene, params, seed
        self.width, self.height = scene.resolution
        mesh, lit = scene.mesh, scene.lit
        self.lit = lit
        self.material_channels = material_channels
        self.batch = backend.mesh_batch(mesh.triangles.reshape(-1), mesh.corner_uvs.reshape(-1, 2))
        if frames is None and lit is not None:
            frames = ShadingFrames(backend, mesh, lit.frames, moving=params.positions.enabled)
        self.frames = frames
        if lit is None:
            self.spec, self.pair_spec = K.RASTERIZE, K.RASTERIZE_PAIR
        else:
            self.spec, self.pair_spec = K.RASTERIZE_LIT_FIT, K.RASTERIZE_LIT_FIT_PAIR
            # The lights with their shadow rows, and the shadow maps R draws before a lit draw.
            self.shadows = ShadowMaps(backend, lit.lighting, mesh, tile_for(self.width, self.height))
            self.lights = self.shadows.lights
        self.plus = backend.render_target(self.width, self.height)
        self.minus = backend.render_target(self.width, self.height)
        self.pair = backend.render_target(self.width, self.height, pair=True) if with_pair else None
        # Whether sub-steps that can (positions not perturbed) draw R+ and R- at once; bench compares.
        self.pair_draw = with_pair
        # Draw the shadow maps before every lit draw, even of unchanged positions (bench measures it).
        self.shadows_every_draw = False

    def pair_applies(self, sub: SubStep) -> bool:
        """Whether this sub-step's R+ and R- can be one draw: the positions
        are not perturbed, so both share their coverage."""
        return self.pair_draw and self.pair is not None and "positions" not in sub.groups

    def draw(self, target, view: int, sign: int = 0, sub: SubStep | None = None, offset: tuple = (0.0, 0.0),
             snapshot=None, pair: bool = False, gain: bool = False) -> None:
        """Render the parameters (sign 0), theta+ (+1) or theta- (-1) of
        sub-step `sub` into `target`, moved by `offset` pixels on screen;
        `snapshot`: a checkpoint's copy instead of theta; `pair` (sign +1,
        positions not perturbed): theta+ and theta- in one draw; `gain` (lit,
        into `pair`): the lit colour, its gain and base colour
        (RASTERIZE_LIT_FIT_GAIN, a lit SART visit's charge)."""
        p = self.params
        pos, tex = p.positions, p.texture
        groups = sub.groups if sub is not None else ()
        index, seed = (sub.index if sub is not None else 0), self.seed

        def eps(group):
            return sign * group.eps if group is not None and group.name in groups else 0.0

        def source(group):
            return snapshot.source(group) if snapshot is not None else group.theta

        view_projection = self.scene.views[view].view_projection
        if offset != (0.0, 0.0):
            view_projection = jittered(view_projection, *offset, self.width, self.height)
        positions = {0: pos.theta, 1: pos.plus, -1: pos.minus}[sign if "positions" in groups else 0]
        samplers = {"positions": snapshot.source(pos) if snapshot is not None else positions,
                    "albedo": source(tex)}
        constants = {"view_projection": view_projection,
                     "texture_key": tex.key(seed, index), "texture_eps": eps(tex),
                     "texture_srgb": int(self.scene.texture_srgb),
                     "texture_stratum": sub.stratum("texture") if sub is not None else -1}
        if self.lit is not None:
            mat, nrm = p.material, p.normal
            self._draw_shadows(samplers["positions"])
            samplers.update(lights=self.lights, normal_map=source(nrm), material=source(mat),
                            shadow_atlas=self.shadows.atlas,
                            corner_frames=self.frames.follow(samplers["positions"]))
            # K.LIT_DRAW, the kernel's uniform block (past 128 bytes of push constants)
            camera = [float(c) for c in self.lit.camera_positions[view]]
            constants.update(camera=camera + [float(self.lit.normal_strength)],
                             eps=(eps(mat), eps(nrm), 0.0, 0.0),
                             material_step=(mat.key(seed, index),
                                            sub.stratum("material") if sub is not None else -1,
                                            self.material_channels, 0),
                             normal_step=(nrm.key(seed, index), sub.stratum("normal") if sub is not None else -1,
                                          0, 0))
        spec = K.RASTERIZE_LIT_FIT_GAIN if gain else self.pair_spec if pair else self.spec
        if self.lit is not None:
            spec = K.lit_fit_kernel(spec, bool(self.shadows.slots))
        self.backend.draw(spec, target, self.batch, samplers=samplers, constants=constants)

    def _draw_shadows(self, positions) -> None:
        """The shadow maps of the positions this draw renders: drawn again
        for each draw while positions are fitted (theta changes in place),
        else once per positions texture."""
        if self.shadows_every_draw or self.params.positions.enabled or self.shadows.drawn_from is not positions:
            self.shadows.draw(positions)

    def textures(self, pair: bool) -> tuple:
        """(plus, minus) textures of a sub-step's renders, for G."""
        if pair:
            both = self.backend.target_textures(self.pair)
            return both, {**both, "color": both["color_minus"]}
        return self.backend.target_textures(self.plus), self.backend.target_textures(self.minus)

    def render(self, view: int, snapshot=None) -> dict:
        """The current parameters' plain render: colour (H, W, 4), id (H, W) int, uv (H, W, 2)."""
        self.draw(self.plus, view, snapshot=snapshot)
        tex = self.backend.target_textures(self.plus)
        read = self.backend.read
        return {"color": read(tex["color"]), "id": np.rint(read(tex["id"])[..., 0]).astype(np.int64),
                "uv": read(tex["uv"])[..., :2]}
