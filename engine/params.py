"""Parameter groups and their GPU copies: each group's values (theta), its
perturbed copies, Adam's moments and G's fixed-point accumulators live in
textures for the whole run; snapshots of them (checkpoints) too."""
from __future__ import annotations

import math

import numpy as np

from .. import gpu_kernels as K
from .reference import as_int32, perturbation_key

SALT_POSITIONS = 1
SALT_TEXTURE = 2
SALT_MATERIAL = 3
SALT_NORMAL = 4
PARAM_WIDTH = 1024  # texels per row of vertex-indexed textures


def pack_rows(values: np.ndarray, width: int, channels: int = 4) -> np.ndarray:
    """(N, c) -> (rows, width, channels) float32, zero padded."""
    n = len(values)
    rows = max(1, math.ceil(n / width))
    out = np.zeros((rows * width, channels), np.float32)
    out[:n, : values.shape[1]] = values
    return out.reshape(rows, width, channels)


def stored_unit_normals(normal_map: np.ndarray) -> np.ndarray:
    """A tangent-space normal map as stored ((h, w, 3), (x, y, z) / 2 + 1/2) ->
    (h, w, 4) with each texel a unit normal with z >= NORMAL_Z_MIN, as a
    fitted map is kept (x, y are its parameters, z follows). Normalising
    keeps each texel's direction, which is all the Normal Map node uses;
    a texel tilted past the limit (or pointing into the surface) is
    pulled back to it."""
    m = 2.0 * np.asarray(normal_map, np.float64)[..., :3] - 1.0
    length = np.linalg.norm(m, axis=-1, keepdims=True)
    m = np.where(length > 1e-12, m / np.maximum(length, 1e-12), (0.0, 0.0, 1.0))
    xy = m[..., :2]
    tilted = m[..., 2:] < K.NORMAL_Z_MIN
    r = np.linalg.norm(xy, axis=-1, keepdims=True)
    xy = np.where(tilted, xy * (K.NORMAL_XY_MAX / np.maximum(r, 1e-12)), xy)
    xy = np.where(tilted & (r <= 1e-12), 0.0, xy)
    z = np.sqrt(np.maximum(1.0 - np.sum(xy * xy, -1, keepdims=True), 0.0))
    stored = 0.5 * np.concatenate([xy, z], -1) + 0.5
    return np.concatenate([stored, np.ones(stored.shape[:2] + (1,))], -1).astype(np.float32)


class ParamGroup:
    """One group of parameters (3 per texel: xyz or rgb) and its optimizer state.

    `perturbed_copies`: P writes theta+ and theta- into textures of their own
    (vertex positions); otherwise R perturbs texels as it fetches them.
    `sensitivity`: G also sums each texel's |c+ - c-| (SART's weights).
    `map_like`: a texel map perturbed a stratum at a time (the texture, and
    material or normal maps bigger than 1 x 1)."""

    def __init__(self, backend, name: str, values: np.ndarray, count: int, salt: int, eps: float,
                 lr: float, clamp01: bool, enabled: bool, perturbed_copies: bool, sensitivity: bool = False):
        self.name = name
        self.rows, self.width = values.shape[:2]
        self.count, self.salt, self.eps, self.lr = count, salt, eps, lr
        self.clamp01, self.enabled = clamp01, enabled
        self.updates = 0  # Adam steps taken
        self._key = (None, 0)  # ((seed, substep), key): P, R+, R- and G ask for the same one
        b = backend
        self.theta = b.texture(self.width, self.rows, "RGBA32F", values)
        self.plus = self.minus = self.theta
        if enabled and perturbed_copies:
            self.plus = b.texture(self.width, self.rows, "RGBA32F")
            self.minus = b.texture(self.width, self.rows, "RGBA32F")
        if enabled:
            self.moment1 = b.texture(self.width, self.rows, "RGBA32F")
            self.moment2 = b.texture(self.width, self.rows, "RGBA32F")
            # Fixed-point sums (lo rows, then hi rows) of dL * s per channel,
            # then with `sensitivity` of |c+ - c-| (FLAG_SENSITIVITY).
            self.grad = b.texture(3 * self.width, (4 if sensitivity else 2) * self.rows, "R32I")
            self.counts = b.texture(self.width, self.rows, "R32I")
        self.sensitivity = enabled and sensitivity

    def key(self, seed: int, substep: int) -> int:
        """The perturbation key of this group at `substep`, as the kernels take it."""
        if self._key[0] != (seed, substep):
            self._key = ((seed, substep), as_int32(perturbation_key(seed, substep, self.salt)))
        return self._key[1]

    def parameter_count(self) -> int:
        return 3 * self.count if self.enabled else 0

    def stratified(self) -> bool:
        """Whether sub-steps perturb a texel parity class at a time (not a
        vertex group, nor a 1 x 1 map of constants)."""
        return self.name == "texture" or (self.name != "positions" and self.count > 1)

    def read(self, backend, texture=None) -> np.ndarray:
        """Theta (or another of the group's textures) as an array; vertex
        positions as (count, 3)."""
        values = backend.read(self.theta if texture is None else texture)
        return values.reshape(-1, 4)[: self.count, :3].copy() if self.salt == SALT_POSITIONS else values


class Snapshot:
    """A copy of the enabled groups' theta on the GPU (a checkpoint's
    candidate, the best so far, a shape's start)."""

    def __init__(self, backend, groups: list):
        self.textures = {g.name: backend.texture(g.width, g.rows, "RGBA32F") for g in groups}

    def source(self, group: ParamGroup):
        """This snapshot's copy of `group`, or its live theta if not held."""
        return self.textures.get(group.name, group.theta)


def perturb(backend, group: ParamGroup, seed: int, sub) -> None:
    """P: theta+ and theta- of a group with perturbed copies (the vertex
    positions), if sub-step `sub` perturbs it."""
    if group.name in sub.groups:
        backend.dispatch(
            K.PERTURB, K.PERTURB.groups(group.width, group.rows),
            images={"theta_plus": group.plus, "theta_minus": group.minus}, samplers={"theta": group.theta},
            constants={"key": group.key(seed, sub.index), "count": group.count, "eps": group.eps})


def copy_texture(backend, group: ParamGroup, source, destination) -> None:
    """Copy one of `group`'s parameter textures into another (COPY)."""
    backend.dispatch(K.COPY, K.COPY.groups(group.width, group.rows),
                     images={"source": source, "destination": destination}, samplers={}, constants={})


class Parameters:
    """The run's groups: vertex positions and the base colour texture, and
    for a lit fit the roughness/metallic map and the normal map."""

    def __init__(self, backend, groups: list, material_channels: int = 0):
        self.backend = backend
        self.material_channels = material_channels  # the material map's fitted channels: 1 roughness, 2 metallic
        self.all = [g for g in groups if g is not None]
        self.by_name = {g.name: g for g in self.all}
        self._free_snapshots = []

    positions = property(lambda self: self.by_name["positions"])
    texture = property(lambda self: self.by_name["texture"])
    material = property(lambda self: self.by_name.get("material"))
    normal = property(lambda self: self.by_name.get("normal"))

    def enabled(self) -> list:
        return [g for g in self.all if g.enabled]

    @property
    def parameter_count(self) -> int:
        return sum(g.parameter_count() for g in self.all)

    def snapshot(self) -> Snapshot:
        """A copy of every enabled group's theta now (from a pool of freed ones)."""
        snap = self._free_snapshots.pop() if self._free_snapshots else Snapshot(self.backend, self.enabled())
        for g in self.enabled():
            copy_texture(self.backend, g, g.theta, snap.textures[g.name])
        return snap

    def reserve_snapshots(self, count: int) -> None:
        """Allocate `count` snapshots for the pool now."""
        while len(self._free_snapshots) < count:
            self._free_snapshots.append(Snapshot(self.backend, self.enabled()))

    def release(self, snap: Snapshot | None) -> None:
        """Give a snapshot back to the pool."""
        if snap is not None:
            self._free_snapshots.append(snap)

    def restore(self, snap: Snapshot, names=None) -> None:
        """Copy a snapshot back into theta (of the groups in `names`, default all it holds)."""
        for name, texture in snap.textures.items():
            if names is None or name in names:
                group = self.by_name[name]
                copy_texture(self.backend, group, texture, group.theta)

    def clear_gradients(self) -> None:
        for g in self.enabled():
            self.backend.clear(g.grad, 0)
            self.backend.clear(g.counts, 0)
