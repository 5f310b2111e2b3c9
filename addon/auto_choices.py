"""Lit by the Scene and the normal map on "auto" (issue 24): what the scene
decides before a run, and why, for the panel and the summary.

The engine's `Settings.lit` and `optimize_normal` stay bools; the panel and
the CLI offer auto | on | off (`engine.settings.MODES`), and `read_inputs`
turns "auto" into the bool before the run, reading the scene once:

- Lit by the Scene, auto: on where the scene renders with EEVEE or Cycles
  and has a visible light with power or a world that is not black; off for
  Workbench, other engines and a dark scene. A lit fit moves the mesh as an
  unlit one does (its normals follow: engine/frames.py). Where the lit fit
  refuses the scene (a View Transform
  other than Standard, a material or world it does not reproduce), auto
  falls back to the unlit fit and says why: a default run never fails for
  being lit. "on" refuses those as before.
- Normal Map, auto: on for a lit fit whose material has a tangent-space
  normal-map image; off otherwise.
- Steps that came from the quality preset (`Choices.steps_preset`) follow
  the fit that was chosen (a lit texture fit takes the one-group count).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import bpy

from ..engine.settings import MODES, preset_kind, quality_preset
from . import material_io, scene_inputs
from .errors import InputError

ENGINE_NAMES = {"BLENDER_EEVEE": "EEVEE", "BLENDER_EEVEE_NEXT": "EEVEE", "CYCLES": "Cycles",
                "BLENDER_WORKBENCH": "Workbench"}


@dataclass
class Choices:
    """What the panel or the CLI leaves to the scene."""

    lit: str = "auto"  # one of MODES
    fit_normal: str = "auto"  # Settings.optimize_normal
    steps_preset: str | None = None  # the quality preset Steps came from; None: set by hand

    def __post_init__(self):
        for name in ("lit", "fit_normal"):
            if getattr(self, name) not in MODES:
                raise InputError(f"{name.replace('_', ' ')} must be one of {MODES}, got {getattr(self, name)!r}")


@dataclass
class Choice:
    """One decided choice: as asked (`mode`), what the run does, and why."""

    mode: str
    on: bool
    reason: str = ""

    def text(self, label: str) -> str:
        """'lit: auto → on (EEVEE, 1 light, world colour)'."""
        chosen = f"auto \u2192 {'on' if self.on else 'off'}" if self.mode == "auto" else self.mode
        return f"{label}: {chosen}" + (f" ({self.reason})" if self.reason else "")


LABELS = {"lit": "lit", "fit_normal": "normal map"}


def choice_lines(choices: dict) -> list:
    """One line per decided choice ({name: Choice or its dict}, a summary's
    "choices"), for the report; the normal map's only in a lit fit."""
    decided = {name: Choice(**c) if isinstance(c, dict) else c for name, c in choices.items()}
    lit = decided.get("lit")
    return [c.text(LABELS.get(name, name)) for name, c in decided.items()
            if not (name == "fit_normal" and lit is not None and not lit.on)]


def _world_light(world, target: str) -> str | None:
    """A few words for what lights the scene from its world, None where it is
    black. Reads no image: an environment texture counts by its strength."""
    if world is None:
        return None
    if not material_io.uses_nodes(world):
        return "world colour" if max(world.color) > 0 else None
    output = material_io.active_output(world.node_tree, "OUTPUT_WORLD", target)
    source = output is not None and material_io.linked_source(output.inputs["Surface"])
    if not source:
        return None
    node = source[0]
    if node.type != "BACKGROUND" or node.inputs["Strength"].is_linked:
        return "world shader"  # the lit read says whether it reproduces it
    strength = float(node.inputs["Strength"].default_value)
    if strength <= 0:
        return None
    if material_io.linked_source(node.inputs["Color"]) is not None:
        return "world environment"
    return "world colour" if max(node.inputs["Color"].default_value[:3]) > 0 else None


def scene_light(scene) -> tuple:
    """(whether `scene` renders lit, why in a few words): EEVEE or Cycles
    with a visible light of some power or a world that is not black. Cheap
    (no pixels read): the panel shows it at every redraw."""
    engine = ENGINE_NAMES.get(scene.render.engine, scene.render.engine)
    if engine == "Workbench":
        return False, "Workbench renders unlit"
    if engine not in ("EEVEE", "Cycles"):
        return False, f"{engine} is neither EEVEE nor Cycles"
    lights = [o for o in material_io.visible_lights(scene)
              if float(o.data.energy) > 0 and max(o.data.color) > 0]
    try:
        world = _world_light(scene.world, material_io.output_target(scene))
    except InputError:  # a muted node: the lit read names it
        world = "world shader"
    words = [engine, f"{len(lights)} light{'' if len(lights) == 1 else 's'}" if lights else "no light",
             world or "black world"]
    return bool(lights or world), ", ".join(words)


def _asked(mode: str, settings_value: bool) -> Choice:
    return Choice(mode, mode == "on") if mode != "auto" else Choice(mode, settings_value)


def read_inputs(obj, camera_collection, settings, choices: Choices, resolution: int, scene) -> tuple:
    """(scene inputs, the run's Settings, {name: Choice}) for `settings`
    with `choices` decided from `scene` (see the module's docstring).
    Raises InputError, changing nothing."""
    scene = scene or bpy.context.scene
    lit = _asked(choices.lit, False)
    s = dataclasses.replace(settings, lit=lit.on, optimize_normal=choices.fit_normal == "on")
    if choices.lit == "auto":
        lit.on, lit.reason = scene_light(scene)
        s = dataclasses.replace(s, lit=lit.on)
    _validate(s, lit)
    try:
        if s.lit and s.optimize_positions:
            material_io.check_frames_follow(obj)
        inputs = scene_inputs.read_scene(obj, camera_collection, resolution, scene, lit=s.lit)
    except InputError as exc:
        if not (choices.lit == "auto" and s.lit):
            raise
        # The scene is lit, but the lit fit refuses it: the unlit fit, saying why.
        lit = Choice("auto", False, f"{scene_light(scene)[1]}, but {exc}")
        s = dataclasses.replace(settings, lit=False, optimize_normal=choices.fit_normal == "on")
        _validate(s, lit)
        inputs = scene_inputs.read_scene(obj, camera_collection, resolution, scene, lit=False)
    normal = _asked(choices.fit_normal, s.optimize_normal)
    if choices.fit_normal == "auto":
        normal.on, normal.reason = _normal_map_choice(obj, inputs) if s.lit else (False, "an unlit fit")
        s = dataclasses.replace(s, optimize_normal=normal.on)
    if choices.steps_preset:
        s = dataclasses.replace(s, steps=quality_preset(choices.steps_preset, **preset_kind(s))["steps"])
    return inputs, s, {"lit": lit, "fit_normal": normal}


def _normal_map_choice(obj, inputs) -> tuple:
    if inputs.arrays.lit.normal_map is None:
        return False, "the material has no normal map"
    try:
        image = material_io.normal_map_image(obj)
    except InputError as exc:
        return False, str(exc)
    return True, f"the material's normal map '{image.name}'"


def _validate(settings, lit: Choice) -> None:
    try:
        settings.validate()
    except ValueError as exc:
        why = f" ({lit.text('lit')})" if lit.mode == "auto" else ""
        raise InputError(f"{exc}{why}") from None
