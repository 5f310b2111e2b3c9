"""Plain arrays the engine works on, and the settings of a run.

Colour encoding: the texture holds the image's own stored values (sRGB-
encoded for an sRGB image, `texture_srgb`); renders and targets are scene-
linear RGBA, premultiplied by alpha, clamped to [0, 1]: R decodes texels
before it blends them, as Blender's engines do. Rows start at the bottom,
as in Blender images and OpenGL.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields

import numpy as np


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


# Quality presets: steps, working resolution and schedule set together.
# "standard" is what Settings() and the tools default to; each was measured
# with tools/evaluate.py (see the README). A joint fit (positions and texture)
# gets `joint_steps`: its groups take turns, so each gets about half. An
# unlit texture-only fit with SART texels gets `visit_steps`: its steps are
# SART visits' (Workbench's filter: 9 points for a visit's mean, two a step,
# then 4 charged points, one a step), so Standard's 1260 are 140 visits.
QUALITY_PRESETS = {
    "draft": {"steps": 400, "joint_steps": 600, "visit_steps": 540, "resolution": 256, "views_per_step": 1},
    "standard": {"steps": 900, "joint_steps": 1200, "visit_steps": 1260, "resolution": 256, "views_per_step": 1},
    "high": {"steps": 4000, "joint_steps": 5000, "visit_steps": 4500, "resolution": 384, "views_per_step": 1},
}
DEFAULT_QUALITY = "standard"


def quality_preset(name: str, joint: bool = True, visits: bool = False) -> dict:
    """The Settings fields (and "resolution") of a quality preset, for a joint
    fit, a fit in SART visits (`visits`: unlit, texture only, SART texels), or
    another single-group one."""
    try:
        preset = dict(QUALITY_PRESETS[name])
    except KeyError:
        raise ValueError(f"quality must be one of {tuple(QUALITY_PRESETS)}, got {name!r}") from None
    joint_steps, visit_steps = preset.pop("joint_steps"), preset.pop("visit_steps")
    if joint:
        preset["steps"] = joint_steps
    elif visits:
        preset["steps"] = visit_steps
    return preset


@dataclass
class Settings:
    optimize_positions: bool = True
    optimize_texture: bool = True
    steps: int = QUALITY_PRESETS[DEFAULT_QUALITY]["joint_steps"]  # the default fit is joint
    lr_positions: float | None = None  # world units per step; None: 0.2 % of the bounding diagonal
    # The texels' step: "sart", the residual each texel's pixels ask of it
    # (their finite differences weigh it), or "adam". lr_texture None: 1.0
    # (SART's relaxation; 1.5 in SART visits) or 0.1 (Adam's rate). A lit
    # fit's texture uses Adam.
    texture_update: str = "sart"
    lr_texture: float | None = None
    # SART texture-only fits, and a joint fit's texture phase: visit one view
    # at a time: render its whole pixel filter for the exact residual (a
    # step a filter point), then charge it (a step a charged point), and
    # update the texels once per visit.
    sart_visits: bool = True
    # Filter points a visit charges (drawn by weight; 0: as many as the filter
    # has). Fewer means more visits in the same time; charged by weights, a
    # point reaches every texel of its footprints, and 4 did best (README).
    visit_points: int = 4
    # How a visit's point charges the residual: "weights", from one plain
    # render, to every texel of each pixel's bilinear footprint by its weight
    # (the unlit render is linear in the texels: that weight is what a
    # perturbation measures); "perturbation", through R+ and R- and one
    # texel stratum per point, as every other step.
    visit_charge: str = "weights"
    eps_positions: float | None = None  # None: about one pixel of screen motion
    eps_texture: float = 0.02
    estimator: str = "per_pixel"  # or "full_image"
    views_per_step: int = 1
    smoothness: float = 100.0  # weight of the uniform-Laplacian term on positions
    normalize: str = "pixels"  # "pixels": gradient of the mean pixel loss; "count": mean over contributors
    seed: int = 0  # 0..SEED_MAX: the kernels take it as a signed 32-bit push constant
    lr_decay: float = 0.05  # learning rates fall exponentially to this fraction at the last step
    beta1: float = 0.9
    beta2: float = 0.99
    # Joint fits: perturb and update positions and texture on alternate steps.
    alternate_groups: bool = True
    write_back_every: int = 0  # steps between write-backs to Blender; 0: only at the end
    # Sub-pixel jitter of each step's renders, and antialiased evaluations.
    antialias: bool = True
    # The pixel filter as a Gaussian's sigma in pixels: the per-step jitter and
    # the antialiased renders follow it. 0.21: Cycles' default 1.5 px
    # Blackman-Harris. EEVEE's film filter is twice as wide (0.43; sigma 0.45
    # matched its silhouettes best). With pixel_filter "auto", a Blender run
    # sets it from the scene's engine (addon/scene_io.pixel_filter_for).
    filter_sigma: float = 0.21
    # How the targets' engine forms a pixel ("gaussian": the Gaussian above,
    # averaged in linear light; "workbench": Workbench's TAA, the log-space
    # weighted mean of its jittered point samples, engine/pixel_filter.py).
    # The per-step jitter draws its points and the loss is taken where it
    # averages them.
    # "auto" (Blender runs): the scene's engine's filter (addon/scene_io.pixel_filter_for); the
    # engine alone reads it as "gaussian".
    pixel_filter: str = "auto"
    workbench_samples: int = 8  # Workbench's Render samples (Render Properties › Sampling)
    # > 0: G charges the residual of a running mean over each view's visits
    # (this is the share each visit replaces, after the first visits' plain
    # mean), not of the step's own jitter sample (gpu_kernels/residual_target.glsl).
    running_residual: float = 0.2
    # ... and at least the current learning-rate scale: at full rate (early,
    # and when a joint fit's texture phase starts again) the step's own
    # sample, fresh; as the rate decays, the running mean.
    residual_follows_lr: bool = True
    # 4: each sub-step perturbs one of the texture's four (x, y) parity
    # classes, so a pixel's bilinear footprint holds one perturbed texel and
    # its loss difference is charged to that texel alone; 1: every texel.
    texture_strata: int = 4
    warmup_steps: int = 20  # learning rates rise linearly over each group's first updates
    # Joint fits: positions are updated during this first fraction of the
    # steps, then only the texture (in SART visits), which settles on the
    # final shape.
    shape_fraction: float = 0.8
    # Joint fits: during this first fraction of the steps only the vertices
    # move, charged coverage differences only (a still-wrong texture cannot
    # pull them), then the colour differences too (detail that silhouettes
    # do not show), taking turns with the texture.
    silhouette_fraction: float = 0.4
    # Render the base colour under the scene's lights and the rest of its
    # Principled material (issue 9; SceneArrays.lit), not as a flat texture.
    lit: bool = False
    # Lit fits: also fit the roughness / metallic map (or constant), each
    # texel charged the whole pixel difference (it changes every colour channel).
    optimize_roughness: bool = False
    optimize_metallic: bool = False
    lr_material: float = 0.05
    eps_material: float = 0.05
    # Lit fits: also fit the tangent-space normal-map image, each texel's
    # x and y (z follows: a unit normal with z > 0), charged the whole pixel
    # difference. eps and lr are in the image's stored units ((x + 1) / 2).
    optimize_normal: bool = False
    lr_normal: float = 0.02
    eps_normal: float = 0.02
    keep_best: bool = True  # hand back the best parameters seen at the checkpoints
    # ... but replace a start that already fits (30 dB) only when this much better
    start_margin_db: float = 2.0
    check_every: int = 0  # steps between checkpoints; 0: about 10 per run

    ESTIMATORS = ("per_pixel", "full_image")
    TEXTURE_UPDATES = ("sart", "adam")
    VISIT_CHARGES = ("weights", "perturbation")
    PIXEL_FILTERS = ("auto", "gaussian", "workbench")
    NORMALIZATIONS = ("pixels", "count")
    SEED_MAX = 2**31 - 1

    def validate(self) -> None:
        from ..gpu_kernels import MAX_VIEWS_PER_STEP

        if not (self.optimize_positions or self.optimize_texture or self.optimize_roughness
                or self.optimize_metallic or self.optimize_normal):
            raise ValueError("nothing to optimize: enable positions, texture or both")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.estimator not in self.ESTIMATORS:
            raise ValueError(f"estimator must be one of {self.ESTIMATORS}, got {self.estimator!r}")
        if self.texture_update not in self.TEXTURE_UPDATES:
            raise ValueError(f"texture update must be one of {self.TEXTURE_UPDATES}, got {self.texture_update!r}")
        if self.visit_charge not in self.VISIT_CHARGES:
            raise ValueError(f"visit charge must be one of {self.VISIT_CHARGES}, got {self.visit_charge!r}")
        if self.normalize not in self.NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {self.NORMALIZATIONS}, got {self.normalize!r}")
        if isinstance(self.seed, bool) or not (isinstance(self.seed, numbers.Integral)
                                               and 0 <= self.seed <= self.SEED_MAX):
            raise ValueError(f"seed must be a whole number in 0..{self.SEED_MAX}, got {self.seed}")
        if not 1 <= self.views_per_step <= MAX_VIEWS_PER_STEP:
            raise ValueError(f"views per step must be 1..{MAX_VIEWS_PER_STEP}, got {self.views_per_step}")
        for name in ("lr_positions", "lr_texture", "eps_positions", "eps_texture", "lr_material", "eps_material",
                     "lr_normal", "eps_normal"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name.replace('_', ' ')} must be a positive number, got {value}")
        if not (np.isfinite(self.smoothness) and self.smoothness >= 0):
            raise ValueError(f"smoothness must be >= 0, got {self.smoothness}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr decay must lie in (0, 1], got {self.lr_decay}")
        if not (np.isfinite(self.start_margin_db) and self.start_margin_db >= 0):
            raise ValueError(f"start margin must be >= 0 dB, got {self.start_margin_db}")
        if self.lit and self.optimize_positions:
            raise ValueError("a lit fit keeps the corners' normals fixed: untick positions")
        if (self.optimize_roughness or self.optimize_metallic) and not self.lit:
            raise ValueError("roughness and metallic are fitted in a lit fit only: tick lit")
        if self.optimize_normal and not self.lit:
            raise ValueError("the normal map is fitted in a lit fit only: tick lit")
        if self.lit and not (self.optimize_texture or self.optimize_roughness or self.optimize_metallic
                             or self.optimize_normal):
            raise ValueError("nothing to optimize: enable the texture, roughness, metallic or normal map")
        if not (np.isfinite(self.filter_sigma) and 0 < self.filter_sigma <= 1):
            raise ValueError(f"filter sigma must lie in (0, 1] pixels, got {self.filter_sigma}")
        if self.pixel_filter not in self.PIXEL_FILTERS:
            raise ValueError(f"pixel filter must be one of {self.PIXEL_FILTERS}, got {self.pixel_filter!r}")
        from .pixel_filter import WORKBENCH_SAMPLES

        if self.workbench_samples not in WORKBENCH_SAMPLES:
            raise ValueError(f"Workbench samples must be one of {WORKBENCH_SAMPLES}, got {self.workbench_samples}")
        if not 0 <= self.running_residual <= 1:
            raise ValueError(f"running residual must lie in [0, 1], got {self.running_residual}")
        if self.texture_strata not in (1, 4):
            raise ValueError(f"texture strata must be 1 or 4, got {self.texture_strata}")
        if self.warmup_steps < 0 or self.check_every < 0:
            raise ValueError("warm-up steps and check interval must be >= 0")
        if not 0 <= self.shape_fraction <= 1:
            raise ValueError(f"shape fraction must lie in [0, 1], got {self.shape_fraction}")
        if not 0 <= self.silhouette_fraction <= 1:
            raise ValueError(f"silhouette fraction must lie in [0, 1], got {self.silhouette_fraction}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("Adam betas must lie in [0, 1)")

    def texture_rate(self, sart: bool, visit: bool = False) -> float:
        """The texels' step size: lr_texture, or the update's own default
        (a SART visit's relaxation: 1.5 took blob-stripes-1k 34.9 -> 35.1 dB
        in 140 visits, 1.3 and 1.6 alike; a visit's residual is exact, and
        SART converges below 2)."""
        if self.lr_texture is not None:
            return self.lr_texture
        return 1.5 if visit else 1.0 if sart else 0.1

    def checkpoint_interval(self, per_run: int) -> int:
        return self.check_every or max(5, self.steps // per_run)

    @classmethod
    def field_names(cls) -> list:
        return [f.name for f in fields(cls)]
