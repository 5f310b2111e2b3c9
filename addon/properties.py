"""The panel's settings, stored on the scene (`scene.sge_optimizer`), and
their conversion into the engine's `Settings`."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty)

from ..engine import QUALITY_PRESETS, Settings, quality_preset
from ..engine.settings import DEFAULT_QUALITY, flag_of
from . import auto_choices

_STANDARD = quality_preset(DEFAULT_QUALITY)
_WRITTEN_BACK = "a constant input, or a Non-Color image written back where it is read; undo puts its pixels back"


def _field(name: str, label: str, note: str = "", **panel) -> dict:
    """A panel property's keywords for Settings field `name`: default, range
    and description from its Flag (engine/settings.py); `panel` adds the
    panel's own (update, precision, items) or narrows the range (Steps from
    1). An automatic field (None) shows 0. tests/test_settings_flags.py
    checks that they agree."""
    flag, default = flag_of(name), Settings.__dataclass_fields__[name].default
    text = flag.help[0].upper() + flag.help[1:]
    if flag.auto:
        default, text = 0.0, f"{text}; 0: automatic ({flag.auto})"
    if flag.auto_mode:  # Auto | On | Off, decided before the run (addon/auto_choices.py)
        default, text = "auto", f"{text}; Auto: {flag.auto_mode}"
        panel = {"items": MODE_ITEMS, **panel}
    keywords = {"name": label, "description": f"{text}; {note}" if note else text}
    if "items" in panel:  # the panel's identifiers, in any case: "SART" for "sart"
        keywords["default"] = next(i[0] for i in panel["items"] if i[0].lower() == default)
    else:
        keywords["default"] = default
        bounds = {"min": flag.min, "max": None if flag.max_open else flag.max, "soft_max": flag.soft_max}
        keywords.update({k: v for k, v in bounds.items() if v is not None and not isinstance(default, bool)})
    keywords.update(panel)
    return keywords


MODE_ITEMS = (("AUTO", "Auto", "Decided from the scene before the run; the panel says what and why"),
              ("ON", "On", "Always"), ("OFF", "Off", "Never"))


def lit_now(props, scene) -> tuple:
    """(whether a run would be lit, why): Lit by the Scene's On or Off, or
    what Auto decides from `scene` (its engine, lights and world; a lit read
    that the scene fails still falls back to unlit at the run)."""
    if props.lit != "AUTO":
        return props.lit == "ON", ""
    return auto_choices.scene_light(scene)


def _fit_kind(self) -> dict:
    """quality_preset's arguments for the fit the panel describes."""
    lit = lit_now(self, self.id_data)[0] if isinstance(self.id_data, bpy.types.Scene) else self.lit == "ON"
    positions = self.optimize_positions
    joint = positions and self.optimize_texture
    visits = self.optimize_texture and not positions and not lit and self.texture_update == "SART"
    return {"joint": joint, "visits": visits}


def _apply_quality(self, _context) -> None:
    """Choosing a preset sets the fields it covers; they stay editable."""
    for name, value in quality_preset(self.quality.lower(), **_fit_kind(self)).items():
        setattr(self, name, value)


def _follow_quality(self, _context) -> None:
    """Switching to another kind of fit (joint, in SART visits, another single
    group) moves Steps to the preset's count for it, unless the user set
    Steps by hand."""
    if _steps_from_preset(self):
        self.steps = quality_preset(self.quality.lower(), **_fit_kind(self))["steps"]


def _steps_from_preset(props) -> bool:
    """Whether Steps is one of its Quality preset's counts (one kind of fit
    or another), not set by hand."""
    name = props.quality.lower()
    kinds = ({"joint": True}, {"joint": False}, {"joint": False, "visits": True})
    return props.steps in [quality_preset(name, **kind)["steps"] for kind in kinds]


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

    lit: EnumProperty(**_field("lit", "Lit by the Scene", update=_follow_quality))
    optimize_roughness: BoolProperty(**_field("optimize_roughness", "Roughness", note=_WRITTEN_BACK))
    optimize_metallic: BoolProperty(**_field("optimize_metallic", "Metallic", note=_WRITTEN_BACK))
    optimize_normal: EnumProperty(**_field("optimize_normal", "Normal Map", note="undo puts its pixels back"))
    optimize_positions: BoolProperty(**_field("optimize_positions", "Positions", update=_follow_quality))
    lr_positions: FloatProperty(**_field("lr_positions", "Learning Rate", precision=5, step=0.01))
    eps_positions: FloatProperty(**_field("eps_positions", "\u03b5", precision=5, step=0.01))
    optimize_texture: BoolProperty(**_field("optimize_texture", "Base Color", update=_follow_quality))
    texture_update: EnumProperty(**_field(
        "texture_update", "Update", update=_follow_quality,
        items=(("SART", "SART", "Each texel moves by the residual its pixels ask of it, weighed by "
                                "their finite differences: fast, and still where the fit is right"),
               ("ADAM", "Adam", "Adam on the estimated gradient, as the paper"))))
    lr_texture: FloatProperty(**_field("lr_texture", "Learning Rate", precision=4, step=0.1))
    eps_texture: FloatProperty(**_field("eps_texture", "\u03b5", min=1e-6, precision=4, step=0.1))

    quality: EnumProperty(
        name="Quality", default=DEFAULT_QUALITY.upper(), update=_apply_quality,
        description="Sets Steps, Resolution and Views per Step together (they stay editable)",
        items=tuple((k.upper(), k.title(), f"{v['joint_steps']} steps ({v['visit_steps']} for an unlit base "
                     f"colour fit, {v['steps']} for another one-group fit) at "
                     f"{v['resolution']} px, {v['views_per_step']} view(s) per step")
                    for k, v in QUALITY_PRESETS.items()))
    steps: IntProperty(**_field("steps", "Steps", min=1, soft_max=5000))
    lr_decay: FloatProperty(**_field("lr_decay", "Learning-Rate Decay", min=0.001, precision=3))
    resolution: IntProperty(name="Resolution", default=_STANDARD["resolution"], min=8, max=16384,
                            soft_max=2048,
                            description="Working resolution (longest side, in pixels); "
                                        "the aspect follows the render settings")
    views_per_step: IntProperty(**_field("views_per_step", "Views per Step"))
    estimator: EnumProperty(**_field(
        "estimator", "Estimator",
        items=(("per_pixel", "Per Pixel", "Per-pixel gradient estimation: each pixel only "
                "credits the parameters it sees (lower variance)"),
               ("full_image", "Full Image", "Classic SPSA: the whole-image loss difference "
                "scales every perturbation"))))
    smoothness: FloatProperty(**_field("smoothness", "Smoothness"))
    alternate_groups: BoolProperty(**_field("alternate_groups", "Alternate Groups"))
    seed: IntProperty(**_field("seed", "Seed"))

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
# The panel's properties that are Settings fields, in the panel's order.
PANEL_FIELDS = tuple(name for name in SGE_PG_settings.__annotations__ if name in Settings.__dataclass_fields__)


def get(context_or_scene) -> SGE_PG_settings:
    scene = getattr(context_or_scene, "scene", context_or_scene)
    return scene.sge_optimizer


def to_settings(props, **overrides) -> Settings:
    """The engine `Settings` for the panel's property group (0: automatic,
    where the field's default is; the maps of a lit fit only when lit). An
    Auto | On | Off field is its On here: `choices` carries what the run
    decides (OptimizationRun(choices=...))."""
    values = {}
    for name in PANEL_FIELDS:
        value = getattr(props, name)
        if flag_of(name).auto:
            value = value or None  # 0: automatic
        elif flag_of(name).auto_mode:
            value = value == "ON"
        elif isinstance(value, str):
            value = value.lower()  # the enum's identifier: "SART" is "sart"
        values[name] = value
    for name in ("optimize_roughness", "optimize_metallic"):
        values[name] = props.lit != "OFF" and values[name]
    values.update(overrides)
    return Settings(**values)


def choices(props, **overrides) -> auto_choices.Choices:
    """What the panel leaves to the scene: Lit by the Scene and Normal Map
    (Auto | On | Off), and whether Steps is its preset's (left as the Quality
    preset set it: the run's fit takes its own count). A Settings field in
    `overrides` is decided by it."""
    steps_preset = props.quality.lower() if "steps" not in overrides and _steps_from_preset(props) else None

    def mode(field: str, prop: str) -> str:
        if field in overrides:
            return "on" if overrides[field] else "off"
        return getattr(props, prop).lower()

    return auto_choices.Choices(lit=mode("lit", "lit"), fit_normal=mode("optimize_normal", "optimize_normal"),
                                steps_preset=steps_preset)


def register_properties():
    bpy.types.Scene.sge_optimizer = PointerProperty(type=SGE_PG_settings)


def unregister_properties():
    del bpy.types.Scene.sge_optimizer
