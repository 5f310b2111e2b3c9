"""The panel's settings, stored on the scene (`scene.sge_optimizer`), and
their conversion into the engine's `Settings`."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty)

from ..engine import QUALITY_PRESETS, Settings, quality_preset
from ..engine.scene import DEFAULT_QUALITY

_DEFAULTS = Settings()
_STANDARD = quality_preset(DEFAULT_QUALITY)


def _fit_kind(self) -> dict:
    """quality_preset's arguments for the fit the panel describes."""
    joint = self.optimize_positions and self.optimize_texture
    visits = (self.optimize_texture and not self.optimize_positions and not self.lit
              and self.texture_update == "SART")
    return {"joint": joint, "visits": visits}


def _apply_quality(self, _context) -> None:
    """Choosing a preset sets the fields it covers; they stay editable."""
    for name, value in quality_preset(self.quality.lower(), **_fit_kind(self)).items():
        setattr(self, name, value)


def _follow_quality(self, _context) -> None:
    """Switching to another kind of fit (joint, in SART visits, another single
    group) moves Steps to the preset's count for it, unless the user set
    Steps by hand."""
    name = self.quality.lower()
    kinds = ({"joint": True}, {"joint": False}, {"joint": False, "visits": True})
    if self.steps in [quality_preset(name, **kind)["steps"] for kind in kinds]:
        self.steps = quality_preset(name, **_fit_kind(self))["steps"]


def _is_mesh(_self, obj) -> bool:
    return obj.type == "MESH"


class SGE_PG_settings(bpy.types.PropertyGroup):
    source: PointerProperty(
        name="Source", type=bpy.types.Object, poll=_is_mesh,
        description="Mesh object to optimize (positions and/or base-colour image)")
    cameras: PointerProperty(
        name="Target Cameras", type=bpy.types.Collection,
        description="Collection of cameras whose first background image is the target")
    reference: PointerProperty(
        name="Reference", type=bpy.types.Object, poll=_is_mesh,
        description="Textured mesh rendered into the cameras' backgrounds by Capture Targets")

    lit: BoolProperty(
        name="Lit by the Scene", default=_DEFAULTS.lit, update=_follow_quality,
        description="Render the base colour under the scene's lights, world and the rest of the "
                    "Principled material (roughness, metallic, normal map), for lit targets such as "
                    "EEVEE or Cycles renders; positions are not optimized then")
    optimize_roughness: BoolProperty(
        name="Roughness", default=_DEFAULTS.optimize_roughness,
        description="Lit fits: also fit the material's Roughness (a constant input, or a Non-Color image "
                    "written back where it is read; undo puts its pixels back)")
    optimize_metallic: BoolProperty(
        name="Metallic", default=_DEFAULTS.optimize_metallic,
        description="Lit fits: also fit the material's Metallic (a constant input, or a Non-Color image "
                    "written back where it is read; undo puts its pixels back)")
    optimize_normal: BoolProperty(
        name="Normal Map", default=_DEFAULTS.optimize_normal,
        description="Lit fits: also fit the tangent-space normal-map image (Image Texture, Non-Color, "
                    "through a Normal Map node); undo puts its pixels back")
    optimize_positions: BoolProperty(
        name="Positions", default=_DEFAULTS.optimize_positions, update=_follow_quality,
        description="Optimize the vertex positions")
    lr_positions: FloatProperty(
        name="Learning Rate", default=0.0, min=0.0, soft_max=0.1, precision=5, step=0.01,
        description="Position step size in world units per step; 0: automatic "
                    "(0.2 % of the bounding-box diagonal)")
    eps_positions: FloatProperty(
        name="\u03b5", default=0.0, min=0.0, soft_max=0.1, precision=5, step=0.01,
        description="Position perturbation size in world units; 0: automatic (about one pixel)")
    optimize_texture: BoolProperty(
        name="Base Color", default=_DEFAULTS.optimize_texture, update=_follow_quality,
        description="Optimize the base-colour image")
    texture_update: EnumProperty(
        name="Update", default=_DEFAULTS.texture_update.upper(), update=_follow_quality,
        description="How base-colour texels step (a lit fit's always use Adam)",
        items=(("SART", "SART", "Each texel moves by the residual its pixels ask of it, weighed by "
                                "their finite differences: fast, and still where the fit is right"),
               ("ADAM", "Adam", "Adam on the estimated gradient, as the paper")))
    lr_texture: FloatProperty(
        name="Learning Rate", default=0.0, min=0.0, soft_max=2.0, precision=4,
        step=0.1, description="Base-colour step size per step; 0: automatic "
                              "(1.0, SART's relaxation, 1.5 in SART visits, or 0.1, Adam's rate)")
    eps_texture: FloatProperty(
        name="\u03b5", default=_DEFAULTS.eps_texture, min=1e-6, soft_max=0.5, precision=4, step=0.1,
        description="Base-colour perturbation size")

    quality: EnumProperty(
        name="Quality", default=DEFAULT_QUALITY.upper(), update=_apply_quality,
        description="Sets Steps, Resolution and Views per Step together (they stay editable)",
        items=tuple((k.upper(), k.title(), f"{v['joint_steps']} steps ({v['visit_steps']} for an unlit base "
                     f"colour fit, {v['steps']} for another one-group fit) at "
                     f"{v['resolution']} px, {v['views_per_step']} view(s) per step")
                    for k, v in QUALITY_PRESETS.items()))
    steps: IntProperty(name="Steps", default=_DEFAULTS.steps, min=1, soft_max=5000,
                       description="Number of optimization steps")
    lr_decay: FloatProperty(
        name="Learning-Rate Decay", default=_DEFAULTS.lr_decay, min=0.001, max=1.0, precision=3,
        description="Fraction of the learning rates left at the last step (1: constant)")
    resolution: IntProperty(name="Resolution", default=_STANDARD["resolution"], min=8, max=16384,
                            soft_max=2048,
                            description="Working resolution (longest side, in pixels); "
                                        "the aspect follows the render settings")
    views_per_step: IntProperty(name="Views per Step", default=_DEFAULTS.views_per_step, min=1, max=64,
                                description="Cameras used per step (gradients are averaged)")
    estimator: EnumProperty(
        name="Estimator", default=_DEFAULTS.estimator,
        items=(("per_pixel", "Per Pixel", "Per-pixel gradient estimation: each pixel only "
                "credits the parameters it sees (lower variance)"),
               ("full_image", "Full Image", "Classic SPSA: the whole-image loss difference "
                "scales every perturbation")))
    smoothness: FloatProperty(name="Smoothness", default=_DEFAULTS.smoothness, min=0.0, soft_max=1000.0,
                              description="Weight of the Laplacian smoothness term on positions")
    alternate_groups: BoolProperty(
        name="Alternate Groups", default=_DEFAULTS.alternate_groups,
        description="When fitting shape and colour together, perturb the shape on even steps and "
                    "the colour on odd ones (a vertex's nudge otherwise drowns the texels' signal)")
    seed: IntProperty(name="Seed", default=_DEFAULTS.seed, min=0,
                      description="Random seed; the same seed gives the same result")

    overlay: EnumProperty(
        name="Overlay", default="OFF",
        description="What to draw over the camera frame when looking through a target camera",
        items=(("OFF", "Off", "No overlay"),
               ("TARGET", "Target", "The camera's target image"),
               ("RENDER", "Render", "The optimizer's current render"),
               ("DIFFERENCE", "Difference", "|render - target|, amplified")))
    overlay_opacity: FloatProperty(name="Opacity", default=1.0, min=0.0, max=1.0, subtype="FACTOR")
    camera_count: IntProperty(name="Cameras", default=12, min=1, max=64,
                              description="Number of cameras made by Add Cameras Around")


# The add-on's package (`sge_optimizer`, or `bl_ext.<repo>.sge_optimizer` when installed).
ADDON_ID = __package__.rpartition(".")[0]


class SGE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    undo_memory_mb: IntProperty(
        name="Undo Memory (MiB)", default=1024, min=16, soft_max=16384,
        description="Memory for the texture snapshots that let Ctrl+Z undo a run's pixels; "
                    "the oldest go first (the last run's are always kept)")

    def draw(self, context):
        from . import image_undo

        layout = self.layout
        layout.prop(self, "undo_memory_mb")
        layout.label(text=f"Texture undo holds {image_undo.memory_bytes() / 2 ** 20:.0f} MiB now; each run "
                          "adds a float copy of its texture (2048\u00b2: 64 MiB)")


def preferences():
    """The add-on preferences, or None when the add-on is not installed."""
    addon = bpy.context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


classes = (SGE_PG_settings, SGE_AP_preferences)


def get(context_or_scene) -> SGE_PG_settings:
    scene = getattr(context_or_scene, "scene", context_or_scene)
    return scene.sge_optimizer


def to_settings(props, **overrides) -> Settings:
    """The engine `Settings` for the panel's property group (0 = automatic
    for the position learning rate and epsilon)."""
    values = dict(
        optimize_positions=props.optimize_positions,
        optimize_texture=props.optimize_texture,
        steps=props.steps,
        lr_decay=props.lr_decay,
        lr_positions=props.lr_positions or None,
        texture_update=props.texture_update.lower(),
        lr_texture=props.lr_texture or None,
        eps_positions=props.eps_positions or None,
        eps_texture=props.eps_texture,
        estimator=props.estimator,
        views_per_step=props.views_per_step,
        smoothness=props.smoothness,
        alternate_groups=props.alternate_groups,
        seed=props.seed,
        lit=props.lit,
        optimize_roughness=props.lit and props.optimize_roughness,
        optimize_metallic=props.lit and props.optimize_metallic,
        optimize_normal=props.lit and props.optimize_normal,
    )
    values.update(overrides)
    return Settings(**values)


def register_properties():
    bpy.types.Scene.sge_optimizer = PointerProperty(type=SGE_PG_settings)


def unregister_properties():
    del bpy.types.Scene.sge_optimizer
