"""Undo for the base-colour image pixels written by a run.

Blender's global (memfile) undo restores mesh data, but pixels written with
`image.pixels.foreach_set` live in the image buffer, which global undo does
not capture (checked on 5.2.3: after `ed.undo` the pixels stay as the run left
them). Image undo proper only covers paint strokes.

So each finished run stamps the image with a custom property (a token; ID
properties *are* in memfile undo) and keeps the pixels for that token and for
the state before the run. After every undo/redo, a handler compares each
image's token with the pixels it holds and writes the matching snapshot.
A packed image needs no repack here: memfile undo restores its packed bytes
(tests/test_operator.py, the save after an undo).

The snapshots are capped by size (the add-on preference "Undo Memory",
1 GiB by default): the oldest go first, but never the latest run's pair, so
the last run can always be undone. An undo past a dropped snapshot leaves
the pixels as they are.
"""
from __future__ import annotations

import uuid
from collections import OrderedDict

import bpy
import numpy as np
from bpy.app.handlers import persistent

from .image_pixels import stored_pixels

TOKEN = "sge_pixels"
DEFAULT_LIMIT_MB = 1024

_snapshots: OrderedDict = OrderedDict()  # key -> flat float32 pixels
_loaded: dict = {}  # image name -> key of the pixels it holds now


def _key(image) -> str:
    token = image.get(TOKEN)
    return str(token) if token is not None else f"base:{image.name}"


def memory_bytes() -> int:
    return sum(p.nbytes for p in _snapshots.values())


def _store(key: str, pixels: np.ndarray) -> None:
    _snapshots[key] = np.array(pixels, np.float32, copy=True).ravel()
    _snapshots.move_to_end(key)


def _trim(limit: int, keep: tuple) -> None:
    """Drop the oldest snapshots until they fit in `limit` bytes, except `keep`."""
    for key in list(_snapshots):
        if memory_bytes() <= limit:
            break
        if key not in keep:
            del _snapshots[key]


def record(image, before: np.ndarray, limit: int) -> None:
    """Call after a run wrote `image`: `before` is `image.pixels` as it was
    before the run (flat). Stamps the image with a new token. `limit`: bytes
    kept (the caller passes the preference "Undo Memory")."""
    before_key = _key(image)
    _store(before_key, before)
    after = stored_pixels(image)
    token = uuid.uuid4().hex
    image[TOKEN] = token
    _store(token, after)
    _loaded[image.name] = token
    _trim(limit, keep=(before_key, token))


def sync() -> list:
    """Make every tracked image hold the pixels its (undone/redone) token
    names. Returns the names of the images rewritten."""
    changed = []
    for name, loaded in list(_loaded.items()):
        image = bpy.data.images.get(name)
        if image is None:
            continue
        key = _key(image)
        if key == loaded or key not in _snapshots:
            continue
        pixels = _snapshots[key]
        if len(pixels) != len(image.pixels):
            continue
        image.pixels.foreach_set(pixels)
        image.update()
        _loaded[name] = key
        changed.append(name)
    return changed


def clear() -> None:
    _snapshots.clear()
    _loaded.clear()


@persistent
def _on_undo_redo(*_args):
    try:
        sync()
    except Exception as exc:  # noqa: BLE001 - a handler must never raise
        print(f"SGE Optimizer: could not restore image pixels after undo: {exc}")


@persistent
def _on_load(*_args):
    clear()


_HANDLERS = (("undo_post", _on_undo_redo), ("redo_post", _on_undo_redo), ("load_post", _on_load))


def register_handlers():
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn not in handlers:
            handlers.append(fn)


def unregister_handlers():
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
    clear()
