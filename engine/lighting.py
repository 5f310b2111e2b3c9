"""Lights and the lit material, as plain data (issue 9: lit appearance).

The addon reads them from Blender (`addon/material_io.py`); the lit shading
(`gpu_kernels/lit_shading.glsl`, numpy reference in `engine/lit_reference.py`)
consumes them. Units are Blender's: power in watts for point, spot and area
lights, strength in W/m^2 for a sun; colours scene-linear RGB.
"""
from __future__ import annotations

from dataclasses import dataclass, field

LIGHT_KINDS = ("SUN", "POINT", "SPOT", "AREA")


@dataclass(frozen=True)
class Light:
    kind: str  # one of LIGHT_KINDS
    color: tuple  # linear RGB
    power: float  # W (point, spot, area) or W/m^2 (sun: Blender's "strength")
    position: tuple  # world space (unused by a sun)
    direction: tuple  # world space unit vector the light points along (the lamp's -Z)
    radius: float = 0.0  # point/spot/sun: shadow_soft_size (sun: angle in radians); area: half the size
    spot_size: float = 0.0  # spot: full cone angle in radians
    spot_blend: float = 0.0  # spot: 0..1
    cast_shadow: bool = True
    area_size: tuple = (0.0, 0.0)  # area: (size, size_y) in world units, after the lamp's scale
    area_shape: str = "SQUARE"  # area: SQUARE, RECTANGLE, DISK or ELLIPSE
    axis_x: tuple = ()  # area: world unit vector of the lamp's X (the `size` side); () = any
    name: str = ""  # the light object's, for messages


@dataclass
class Lighting:
    lights: tuple = ()  # Light
    ambient: tuple = (0.0, 0.0, 0.0)  # the world's colour times strength: uniform radiance
    # An environment image as 9 spherical-harmonic coefficients (9, 3) of its
    # radiance, or None (a uniform world: `ambient` alone).
    environment_sh: object = None
    extra: dict = field(default_factory=dict)

    def is_dark(self) -> bool:
        """Nothing to see: no light with power and a black world."""
        lit = any(l.power > 0 and max(l.color) > 0 for l in self.lights)
        return not lit and max(self.ambient) <= 0 and self.environment_sh is None
