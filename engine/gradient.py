"""G: each pixel's loss difference charged to the parameters that touch it,
into fixed-point accumulators; and the running residual targets G compares
with (residual_target.glsl)."""
from __future__ import annotations

import math

import numpy as np

from .. import gpu_kernels as K
from .params import PARAM_WIDTH, pack_rows
from .reference import loss_space
from .schedule import SubStep


class LossSpace:
    """Where the loss compares: sRGB-encoded for an sRGB texture (renders
    blend in linear light, then G encodes them); log2(linear + 1) under
    Workbench's filter, where Workbench averages; else linear."""

    def __init__(self, srgb: bool, workbench: bool):
        self.srgb, self.workbench = srgb, workbench

    def flag(self) -> int:
        """G's and the scorer's flag for this space (as `encoded`)."""
        return K.FLAG_LOG_LOSS if self.workbench else K.FLAG_SRGB_LOSS if self.srgb else 0

    def encoded(self, color: np.ndarray) -> np.ndarray:
        """A linear render or target as the loss compares it (common.glsl)."""
        return loss_space(color, self.srgb, self.workbench)


class Gradient:
    """G's passes and what they write: per-group sums (in each group), the
    full-image estimator's per-view sums (`global_acc`), the loss estimate
    (`loss_acc`), and the worklist of texels touched since the last update."""

    def __init__(self, backend, scene, settings, params, loss: LossSpace, targets: list,
                 worklist_capacity: int, running_means: bool, frames=None):
        b = self.backend = backend
        self.settings, self.params, self.loss, self.targets = settings, params, loss, targets
        self.scene = scene
        self.width, self.height = scene.resolution
        mesh = scene.mesh
        self.triangles = b.texture(PARAM_WIDTH, max(1, math.ceil(len(mesh.triangles) / PARAM_WIDTH)),
                                   "RGBA32F", pack_rows(mesh.triangles.astype(np.float32), PARAM_WIDTH))
        # A lit fit moving vertices may charge each triangle's ring too (FLAG_RING, settings.ring_charge).
        self.ring = ((frames.ring_range, frames.ring)
                     if settings.ring_charge and frames is not None and frames.moving else None)
        self.global_acc = b.texture(K.MAX_VIEWS_PER_STEP, 2, "R32I")
        self.loss_acc = b.texture(1, 2, "R32I")
        self.worklist = b.texture(PARAM_WIDTH, math.ceil(worklist_capacity / PARAM_WIDTH), "R32I")
        self.worklist_length = b.texture(1, 1, "R32I")
        self.scratch = b.texture(1, 2, "R32I")  # a map's G pass's loss sum and worklist: unused
        self.specialized = True  # G compiled per charge (False: the all-in kernel; lab/bench.py)
        self.loss_substeps = 0
        if running_means:  # a mean per view (residual_target.glsl)
            self.running_means = [b.texture(self.width, self.height, "RGBA32F") for _ in scene.views]
            for mean in self.running_means:
                b.clear(mean, 0.0)  # mix(garbage, s, 1) could still be NaN
            self.view_visits = [0] * len(scene.views)
            self.effective_target = b.texture(self.width, self.height, "RGBA32F")

    def charges(self, lit: bool, by_weights: bool) -> set:
        """The kinds of G (flags) this fit runs: each compiles a variant
        (accumulate_gradient_kernel) that warm-up has built before the first step."""
        s, p = self.settings, self.params
        if s.estimator == "full_image":
            return {K.FLAG_FULL_IMAGE}
        positions, texels = p.positions.enabled, p.texture.enabled or lit
        kinds = ({K.FLAG_POSITIONS} if positions else set()) | ({K.FLAG_TEXTURE} if texels else set())
        if positions and texels and not s.alternate_groups:
            kinds.add(K.FLAG_POSITIONS | K.FLAG_TEXTURE)
        if by_weights:
            kinds.add(K.FLAG_TEXTURE | K.FLAG_TEXEL_WEIGHTS)
        return kinds

    def kernel(self, flags: int):
        return K.accumulate_gradient_kernel(flags) if self.specialized else K.ACCUMULATE_GRADIENT

    def accumulate(self, sub: SubStep, plus: dict, minus: dict, lr_scale: float = 1.0,
                   by_weights: bool = False, gain: bool = False) -> None:
        """G for sub-step `sub`'s renders (`plus`, `minus`). A SART visit's
        sub-step charges the residual of the view's filtered mean;
        `by_weights`: from one plain render (`plus`), each texel of a pixel's
        footprint by its bilinear weight. `lr_scale`: the step's rate scale,
        which the running residual follows. `gain` (a lit visit's charge):
        `plus` is RASTERIZE_LIT_FIT_GAIN's render, whose gain and base colour
        turn the residual into a base-colour one (FLAG_TEXEL_GAIN)."""
        s, p = self.settings, self.params
        flags = (K.FLAG_POSITIONS if "positions" in sub.groups else 0) | \
                (K.FLAG_TEXTURE if "texture" in sub.groups else 0)
        if sub.silhouette_only:
            flags |= K.FLAG_SILHOUETTE
        elif "positions" in sub.groups and self.ring is not None:
            flags |= K.FLAG_RING
        flags |= self.loss.flag()
        if s.estimator == "full_image":
            flags |= K.FLAG_FULL_IMAGE
        target = self.targets[sub.view]
        if "texture" in sub.groups and p.texture.sensitivity:
            flags |= K.FLAG_SENSITIVITY
        if sub.visit and by_weights:  # one plain render; a lit one's gain is its color_minus
            minus = {**plus, "color": plus["color_minus"]} if gain else plus
            flags |= K.FLAG_TEXEL_WEIGHTS | (K.FLAG_TEXEL_GAIN if gain else 0)
        if sub.visit:
            texel = K.FLAG_TEXEL_RESIDUAL | (K.FLAG_TEXEL_SRGB if self.scene.texture_srgb else 0)
            if gain:
                target = self.residual_target(sub.view, plus, {"color": plus["color_minus"]}, rate=0.0,
                                              flags=texel | K.FLAG_TEXEL_GAIN, uv=plus["uv"])
            else:
                target = self.residual_target(sub.view, plus, minus, rate=0.0, flags=texel)
            flags |= K.FLAG_EFFECTIVE_TARGET
        elif s.running_residual > 0:
            target = self.residual_target(sub.view, plus, minus, lr_scale=lr_scale)
            flags |= K.FLAG_EFFECTIVE_TARGET  # and the loss is accumulated already
        kernel = self.kernel(flags)
        self.dispatch(kernel, kernel.groups(self.width, self.height), flags, plus, minus, target, sub)
        for group, channels in ((p.material, p.material_channels), (p.normal, 3)):  # normals: x, y
            if group is not None and group.name in sub.groups:
                self._coupled(group, channels, sub, target, plus, minus)
        self.loss_substeps += 1

    def _samplers(self, plus: dict, minus: dict, target) -> dict:
        return {"color_plus": plus["color"], "color_minus": minus["color"], "id_plus": plus["id"],
                "id_minus": minus["id"], "uv_plus": plus["uv"], "uv_minus": minus["uv"],
                "target": target, "triangles": self.triangles,
                # without a ring (FLAG_RING off) any float texture stands in
                "ring_range": self.ring[0] if self.ring else self.triangles,
                "ring": self.ring[1] if self.ring else self.triangles}

    def dispatch(self, kernel, groups, flags: int, plus: dict, minus: dict, target, sub: SubStep) -> None:
        """One G dispatch charging vertices and texels (as `flags` say)."""
        pos, tex, seed = self.params.positions, self.params.texture, self.settings.seed
        # A disabled group's accumulators are never written (its flag is off):
        # bind any integer image in their place.
        dummy = self.loss_acc
        self.backend.dispatch(
            kernel, groups,
            images={"grad_pos": pos.grad if pos.enabled else dummy,
                    "count_pos": pos.counts if pos.enabled else dummy,
                    "grad_tex": tex.grad if tex.enabled else dummy,
                    "count_tex": tex.counts if tex.enabled else dummy,
                    "global_acc": self.global_acc, "loss_acc": self.loss_acc,
                    "worklist": self.worklist, "worklist_length": self.worklist_length},
            samplers=self._samplers(plus, minus, target),
            constants={"key_pos": pos.key(seed, sub.index), "key_tex": tex.key(seed, sub.index),
                       "slot": sub.slot, "flags": flags, "image_size": (self.width, self.height),
                       "tex_size": (tex.width, tex.rows), "pos_width": pos.width,
                       "tex_stratum": sub.stratum("texture"), "tex_channels": 7})

    def _coupled(self, group, channels: int, sub: SubStep, target, plus: dict, minus: dict) -> None:
        """G for a material or normal map: one pass per such group. G binds 8
        images, the most a shader gets on several backends, so the map takes
        the texture's slots in a pass of its own; each texel channel in
        `channels` is charged the whole pixel difference (FLAG_COUPLED)."""
        scratch = self.scratch
        flags = K.FLAG_TEXTURE | K.FLAG_COUPLED | self.loss.flag()
        kernel = self.kernel(flags)
        self.backend.dispatch(
            kernel, kernel.groups(self.width, self.height),
            images={"grad_pos": scratch, "count_pos": scratch, "grad_tex": group.grad, "count_tex": group.counts,
                    "global_acc": scratch, "loss_acc": scratch, "worklist": scratch, "worklist_length": scratch},
            samplers=self._samplers(plus, minus, target),
            constants={"key_pos": 0, "key_tex": group.key(self.settings.seed, sub.index), "slot": sub.slot,
                       "flags": flags, "image_size": (self.width, self.height), "tex_size": (group.width, group.rows),
                       "pos_width": self.params.positions.width, "tex_stratum": sub.stratum(group.name),
                       "tex_channels": channels})

    def residual_target(self, view: int, plus: dict, minus: dict, rate: float | None = None, flags: int = 0,
                        share: float = 0.5, lr_scale: float = 1.0, uv=None):
        """The target G compares with so that it charges the residual of the
        view's running mean (residual_target.glsl); the first visits average
        plainly, then each replaces `running_residual` of the mean (at least
        `lr_scale` with `residual_follows_lr`). An explicit `rate` replaces
        that share (0: the mean stays)."""
        s = self.settings
        if rate is None:
            self.view_visits[view] += 1
            rate = max(1.0 / self.view_visits[view], s.running_residual)
            if s.residual_follows_lr:
                rate = max(rate, lr_scale)
        self.backend.dispatch(
            K.RESIDUAL_TARGET, K.RESIDUAL_TARGET.groups(self.width, self.height),
            images={"running_mean": self.running_means[view], "effective_target": self.effective_target,
                    "loss_acc": self.loss_acc},
            samplers={"color_plus": plus["color"], "color_minus": minus["color"], "target": self.targets[view],
                      "uv": plus["color"] if uv is None else uv},
            constants={"image_size": (self.width, self.height), "flags": self.loss.flag() | flags, "rate": rate,
                       "share": share})
        return self.effective_target

    def take_loss_estimate(self) -> float | None:
        """Mean per-pixel loss (squared error summed over RGBA) of the perturbed
        renders since the last call; None if no sub-step ran since."""
        if self.loss_substeps == 0:
            return None
        total = float(self.backend.read_fixed(self.loss_acc, 1)[0, 0, 0])
        self.backend.clear(self.loss_acc, 0)
        mean = total / (self.loss_substeps * self.width * self.height)
        self.loss_substeps = 0
        return mean

    def read_sums(self) -> dict:
        """The raw accumulators of every enabled group (sum of dL * s per
        parameter, counts, and sensitivities), and the full-image sums."""
        b, out = self.backend, {}
        for g in self.params.enabled():
            grad = b.read_fixed(g.grad, g.rows)[..., 0].reshape(g.rows, g.width, 3)
            counts = b.read(g.counts)[..., 0]
            if g.name == "positions":
                grad, counts = grad.reshape(-1, 3)[: g.count], counts.reshape(-1)[: g.count]
            out[g.name], out[g.name + "_count"] = grad, counts
            if g.sensitivity:
                sens = b.read_fixed(g.grad, g.rows, row0=2 * g.rows)[..., 0]
                out[g.name + "_sensitivity"] = sens.reshape(g.rows, g.width, 3)
        out["global"] = b.read_fixed(self.global_acc, 1)[0, :, 0]
        return out

    def clear(self) -> None:
        """Every accumulator back to zero (the groups' sums too)."""
        self.params.clear_gradients()
        for texture in (self.global_acc, self.loss_acc, self.worklist_length):
            self.backend.clear(texture, 0)
        self.loss_substeps = 0
