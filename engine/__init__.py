"""The optimization engine: numpy arrays in, numpy arrays out, GPU in between.

It never imports `bpy`; it drives any object with the `backend.Backend` shape.
"""
from .color import image_metrics, mean_psnr, psnr
from .optimizer import Engine
from .scene import MeshArrays, SceneArrays, View
from .settings import QUALITY_PRESETS, Settings, quality_preset

__all__ = ["Engine", "MeshArrays", "SceneArrays", "Settings", "View", "image_metrics", "mean_psnr", "psnr",
           "QUALITY_PRESETS", "quality_preset"]
