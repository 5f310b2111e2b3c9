"""The settings of a run, each field described once.

Every `Settings` field carries a `Flag` (its `dataclasses.field` metadata):
one line of help, its range or choices, its command-line flag, and its
category: "user" (shown plainly), "advanced" (an Advanced heading) or
"research" (the paper's baselines and the experiment switches). The CLI
(tools/optimize.py), the panel's properties (addon/properties.py) and
docs/cli.md are built from it; tests/test_settings_flags.py checks that
they agree.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

from ..gpu_kernels import MAX_VIEWS_PER_STEP
from .pixel_filter import WORKBENCH_SAMPLES

# Quality presets: steps, working resolution and views per step set together
# (docs/decisions/quality-presets.md). A joint fit (positions and texture)
# gets `joint_steps`, its groups taking turns; an unlit texture-only fit with
# SART texels gets `visit_steps` (its steps are SART visits': Workbench's 9
# filter points two a step, then 4 charged points one a step, so Standard's
# 1260 are 140 visits); another single-group fit `steps`.
QUALITY_PRESETS = {
    "draft": {"steps": 400, "joint_steps": 600, "visit_steps": 540, "resolution": 256, "views_per_step": 1},
    "standard": {"steps": 900, "joint_steps": 1200, "visit_steps": 1260, "resolution": 256, "views_per_step": 1},
    "high": {"steps": 4000, "joint_steps": 5000, "visit_steps": 4500, "resolution": 384, "views_per_step": 1},
}
DEFAULT_QUALITY = "standard"
CATEGORIES = ("user", "advanced", "research")
# What the CLI and the panel offer for a field with `modes`; "auto" is
# decided by the add-on from the scene before the run (addon/auto_choices.py).
MODES = ("auto", "on", "off")


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


def preset_kind(settings) -> dict:
    """quality_preset's `joint` and `visits` for the fit `settings` describe."""
    s = settings
    joint = s.optimize_positions and s.optimize_texture
    visits = (s.optimize_texture and not s.optimize_positions and not s.lit and s.texture_update == "sart"
              and s.sart_visits)
    return {"joint": joint, "visits": visits}


@dataclass(frozen=True)
class Flag:
    """What a `Settings` field is, for the people and tools that set it."""

    help: str  # one line, for --help, the panel's tooltip and docs/cli.md
    category: str = "user"  # one of CATEGORIES
    cli: str | None = None  # its flag; None: "--" and the name with dashes
    set_by: str | None = None  # no flag of its own: the flag that sets it
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # the range excludes `min`
    max_open: bool = False  # ... or `max`
    soft_max: float | None = None  # where the panel's slider stops
    auto: str | None = None  # the default is None, which means this
    preset: str | None = None  # --quality (the panel's Quality) sets it
    doc: str | None = None  # docs/decisions/<doc>.md: how its default was chosen
    # A bool the CLI and the panel set as one of MODES, "auto" by default,
    # which the add-on decides from the scene as this says; the field holds the outcome.
    auto_mode: str | None = None

    def __post_init__(self):
        assert self.category in CATEGORIES, self.category

    def in_range(self, value) -> bool:
        if self.min is None and self.max is None:
            return True
        if not (isinstance(value, numbers.Real) and math.isfinite(value)):
            return False
        low = self.min is None or (value > self.min if self.min_open else value >= self.min)
        high = self.max is None or (value < self.max if self.max_open else value <= self.max)
        return low and high

    def range_text(self) -> str:
        """">= 0", "> 0", "1..64" or "(0, 1]"; "" when unbounded."""
        if self.max is None:
            return "" if self.min is None else f"{'>' if self.min_open else '>='} {self.min:g}"
        if self.min is None:
            return f"{'<' if self.max_open else '<='} {self.max:g}"
        if isinstance(self.min, int) and isinstance(self.max, int):
            return f"{self.min}..{self.max}"
        return f"{'(' if self.min_open else '['}{self.min:g}, {self.max:g}{')' if self.max_open else ']'}"


def setting(default, help: str, **flag):
    """A `Settings` field with its `Flag` (see Flag for the keywords)."""
    return field(default=default, metadata={"flag": Flag(help, **flag)})


def flag_of(name: str) -> Flag:
    return Settings.__dataclass_fields__[name].metadata["flag"]


def cli_flag(name: str) -> str | None:
    """The command-line flag of Settings field `name`; None where another flag sets it."""
    flag = flag_of(name)
    return None if flag.set_by else flag.cli or "--" + name.replace("_", "-")


POSITIVE = {"min": 0.0, "min_open": True}
FRACTION = {"min": 0.0, "max": 1.0}


@dataclass
class Settings:
    ESTIMATORS = ("per_pixel", "full_image")
    TEXTURE_UPDATES = ("sart", "adam")
    VISIT_CHARGES = ("weights", "perturbation")
    PIXEL_FILTERS = ("auto", "gaussian", "workbench")
    SEED_MAX = 2**31 - 1

    # What is fitted, and for how long
    optimize_positions: bool = setting(True, "optimize the vertex positions", set_by="--optimize")
    optimize_texture: bool = setting(True, "optimize the base-colour image", set_by="--optimize")
    steps: int = setting(
        QUALITY_PRESETS[DEFAULT_QUALITY]["joint_steps"],  # the default fit is joint
        "optimization steps, one perturbation pair each", min=0, preset="steps", doc="quality-presets")
    views_per_step: int = setting(1, "views (each with its perturbation pair) averaged per update",
                                  min=1, max=MAX_VIEWS_PER_STEP, preset="views_per_step")
    smoothness: float = setting(100.0, "weight of the uniform-Laplacian term on positions (0: off)",
                                min=0.0, soft_max=1000.0)
    seed: int = setting(0, "seeds the perturbations and the view order (the kernels take a signed "
                           "32-bit integer)", min=0, max=SEED_MAX)
    write_back_every: int = setting(0, "write to the Blender data every N steps (0: only at the end)", min=0)
    keep_best: bool = setting(True, "hand back the best parameters scored at the checkpoints, never worse "
                                    "than the start")
    validation_views: int = setting(0, "target views set aside, never fitted, that judge the checkpoints and the "
                                       "shape choice (-1: 1 with 6 to 11 targets, 2 with 12 or more; off by "
                                       "default: it cost 1-2.5 dB held-out, docs/decisions/validation-views.md)",
                                    min=-1, category="advanced")
    # Lit fits (issue 9; SceneArrays.lit)
    lit: bool = setting(False, "render the base colour under the scene's lights and the rest of its "
                               "Principled material, for lit targets (EEVEE, Cycles); moved vertices carry "
                               "their normals along",
                        auto_mode="on where the scene renders with EEVEE or Cycles and has a light "
                                          "or a world that is not black")
    optimize_roughness: bool = setting(False, "lit fits: also fit the Principled Roughness", cli="--fit-roughness")
    optimize_metallic: bool = setting(False, "lit fits: also fit the Principled Metallic", cli="--fit-metallic")
    optimize_normal: bool = setting(False, "lit fits: also fit the tangent-space normal-map image "
                                           "(x and y; z follows)", cli="--fit-normal",
                                    auto_mode="on for a lit fit whose material has a normal-map image")

    # Advanced: step sizes, schedule, pixel filter
    lr_positions: float | None = setting(None, "Adam step for positions, in world units", category="advanced",
                                         auto="0.2 % of the bounding diagonal", soft_max=0.1, **POSITIVE)
    eps_positions: float | None = setting(None, "perturbation of positions, in world units", category="advanced",
                                          auto="about one pixel at the object", soft_max=0.1, **POSITIVE)
    lr_texture: float | None = setting(None, "texel step: SART's relaxation or Adam's rate", category="advanced",
                                       auto="SART 1.0, 1.5 in SART visits; Adam 0.1", soft_max=2.0,
                                       doc="sart-relaxation", **POSITIVE)
    eps_texture: float = setting(0.02, "perturbation of texels", category="advanced", soft_max=0.5, **POSITIVE)
    lr_decay: float = setting(0.05, "fraction of the learning rates left at the last step (of each phase "
                                    "of a joint fit)", category="advanced", min=0.0, min_open=True, max=1.0)
    warmup_steps: int = setting(20, "learning rates rise linearly over each group's first updates",
                                category="advanced", min=0)
    beta1: float = setting(0.9, "Adam's first-moment decay", category="advanced", min=0.0, max=1.0, max_open=True)
    beta2: float = setting(0.99, "Adam's second-moment decay", category="advanced", min=0.0, max=1.0,
                           max_open=True)
    shape_fraction: float = setting(0.8, "joint fits: positions move during this first fraction of the steps, "
                                         "then the texture settles alone", category="advanced", **FRACTION)
    silhouette_fraction: float = setting(0.4, "joint fits: the vertices alone, following coverage only, during "
                                              "this first fraction of the steps, then colour too",
                                         category="advanced", **FRACTION)
    visit_points: int = setting(4, "filter points a SART visit charges, drawn by weight (0: all of the filter's)",
                                category="advanced", min=0, doc="visit-points")
    antialias: bool = setting(True, "sub-pixel jitter of each step's renders, and antialiased scoring",
                              category="advanced")
    pixel_filter: str = setting("auto", "how the targets' engine forms a pixel: auto (the scene's engine's), "
                                        "gaussian (filter sigma), workbench (Workbench's antialiasing)",
                                category="advanced", choices=PIXEL_FILTERS)
    filter_sigma: float = setting(0.21, "the Gaussian pixel filter's sigma in pixels (0.21: Cycles' default); "
                                        "pixel filter auto takes it from the scene's engine",
                                  category="advanced", min=0.0, min_open=True, max=1.0, doc="filter-sigma")
    workbench_samples: int = setting(8, "Workbench's Render samples, for pixel filter workbench (auto reads "
                                        "the scene's)", category="advanced", choices=WORKBENCH_SAMPLES)
    patience: int = setting(0, "keep best: end the run once this many checkpoints in a row have not beaten the "
                               "best (0: run every step)", category="advanced", min=0)
    start_margin_db: float = setting(2.0, "keep best: a start that already fits (30 dB) is replaced only by a "
                                          "result this many dB better", category="advanced", min=0.0)
    check_every: int = setting(0, "steps between keep-best checkpoints (0: about 10 a run)", category="advanced",
                               min=0)
    lr_material: float = setting(0.05, "lit fits: the roughness and metallic step", category="advanced",
                                 **POSITIVE)
    eps_material: float = setting(0.05, "lit fits: the roughness and metallic perturbation",
                                  category="advanced", **POSITIVE)
    lr_normal: float = setting(0.02, "lit fits: the normal map's step, in its stored units ((x + 1) / 2)",
                               category="advanced", **POSITIVE)
    eps_normal: float = setting(0.02, "lit fits: the normal map's perturbation, in its stored units",
                                category="advanced", **POSITIVE)

    # Research: the paper's baselines and the experiment switches
    estimator: str = setting("per_pixel", "the gradient estimate: per_pixel (each pixel credits the parameters "
                                          "it sees) or full_image (the whole image's loss difference: SPSA, the "
                                          "paper's baseline)",
                             category="research", choices=ESTIMATORS)
    texture_update: str = setting("sart", "how texels step: sart (the residual their pixels ask of them, "
                                          "weighed by their finite differences) or adam (pure SGE, as the "
                                          "paper); a lit fit's texels use Adam unless lit_visits",
                                  category="research", choices=TEXTURE_UPDATES)
    lit_visits: bool = setting(False, "a lit base-colour fit (no other map moving) in SART visits, each pixel's "
                                      "residual turned into a base-colour one by its gain; off: Adam held more "
                                      "held-out PSNR against EEVEE (docs/decisions/lit-visits.md)",
                               category="research")
    ring_charge: bool = setting(False, "a lit fit moving vertices also charges each pixel the vertices its "
                                       "triangle's normals depend on (the ring beyond its own three); off: their "
                                       "small share came with the whole pixel's noise (docs/decisions/ring-charge.md)",
                                category="research")
    sart_visits: bool = setting(True, "SART texture fits (and a joint fit's texture phase) visit one view at a "
                                      "time: its exact residual, a step per filter point, one update a visit",
                                category="research")
    visit_charge: str = setting("weights", "how a visit's point charges the residual: weights (every texel of a "
                                           "pixel's bilinear footprint by its weight) or perturbation (R+ and R-)",
                                category="research", choices=VISIT_CHARGES)
    alternate_groups: bool = setting(True, "joint fits: perturb positions on even steps, texture on odd ones (a "
                                           "vertex's nudge otherwise drowns the texels' signal)",
                                     category="research", doc="alternate-groups")
    running_residual: float = setting(0.2, "share of a view's running mean render each visit replaces; the "
                                           "gradient charges that mean's residual (0: the step's own sample's)",
                                      category="research", **FRACTION)
    residual_follows_lr: bool = setting(True, "the running residual's share is at least the learning-rate "
                                              "scale (fresh samples at full rate)", category="research")
    large_steps: float = setting(0.0, "Large Steps (Nicolet et al. 2021): the vertex step preconditioned by "
                                      "(I + lambda L)^-1 with this lambda (L: the combinatorial Laplacian), "
                                      "uniform Adam in between (0: off, Adam per coordinate; off: it scored "
                                      "below Adam on the joint cases)",
                                 category="research", min=0.0, soft_max=100.0, doc="large-steps")
    texture_strata: int = setting(4, "4: each sub-step perturbs one of the texture's four parity classes; "
                                     "1: every texel", category="research", choices=(1, 4))

    def validate(self) -> None:
        if not (self.optimize_positions or self.optimize_texture or self.optimize_roughness
                or self.optimize_metallic or self.optimize_normal):
            raise ValueError("nothing to optimize: enable positions, texture or both")
        if isinstance(self.seed, bool) or not (isinstance(self.seed, numbers.Integral)
                                               and flag_of("seed").in_range(self.seed)):
            raise ValueError(f"seed must be a whole number in 0..{self.SEED_MAX}, got {self.seed}")
        for f in fields(self):
            flag, value, label = f.metadata["flag"], getattr(self, f.name), f.name.replace("_", " ")
            if value is None and flag.auto:
                continue
            if flag.choices is not None and value not in flag.choices:
                raise ValueError(f"{label} must be one of {flag.choices}, got {value!r}")
            if not flag.in_range(value):
                raise ValueError(f"{label} must be {flag.range_text()}, got {value}")
        if self.large_steps > 0 and self.estimator == "full_image":
            raise ValueError("large steps needs the per_pixel estimator")
        if (self.optimize_roughness or self.optimize_metallic) and not self.lit:
            raise ValueError("roughness and metallic are fitted in a lit fit only: tick lit")
        if self.optimize_normal and not self.lit:
            raise ValueError("the normal map is fitted in a lit fit only: tick lit")
        if self.lit and not (self.optimize_positions or self.optimize_texture or self.optimize_roughness
                             or self.optimize_metallic or self.optimize_normal):
            raise ValueError("nothing to optimize: enable the texture, roughness, metallic or normal map")

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
