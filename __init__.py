"""SGE Optimizer: inverse rendering inside Blender by per-pixel stochastic
gradient estimation (Deliot, Heitz, Belcour, I3D 2024).

This folder is the extension's package. `engine/` and `gpu_kernels/` never
import `bpy`; `addon/` is everything that knows Blender.
"""


def register():
    from .addon import register as _register

    _register()


def unregister():
    from .addon import unregister as _unregister

    _unregister()
