"""Shape keys: read the shape the user sees, write the result where it shows.

With shape keys, `mesh.vertices` holds the reference (Basis) key's positions,
while the viewport shows the mix of the keys; a write into `mesh.vertices`
alone is hidden by the mix and thrown away by the next Edit Mode toggle.

Reading: the relative mix as Blender evaluates it (muted and zero-valued keys
skipped; a pinned key, `show_only_shape_key`, shows alone).
Writing: the change Δ of the visible shape goes into
- the active key, when it is not the Basis and shows at full strength
  (pinned, or value 1): the visible shape then moves by exactly Δ;
- else the Basis, and with it every other key (their offsets are kept), so
  the mix moves by exactly Δ.
Keys whose influence goes through a vertex group, and absolute keys, are
refused by name.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError


def _co(block) -> np.ndarray:
    co = np.empty(len(block.data) * 3, np.float32)
    block.data.foreach_get("co", co)
    return co.reshape(-1, 3)


def _set_co(block, co: np.ndarray) -> None:
    block.data.foreach_set("co", np.ascontiguousarray(co, np.float32).ravel())


def _contributing(obj):
    key = obj.data.shape_keys
    if obj.show_only_shape_key:
        return [obj.active_shape_key] if obj.active_shape_key is not None else []
    return [kb for kb in key.key_blocks
            if kb != key.reference_key and not kb.mute and kb.value != 0.0]


def check(obj) -> None:
    """InputError naming the key when its mix cannot be read or written exactly."""
    key = obj.data.shape_keys
    if key is None:
        return
    if not key.use_relative:
        raise InputError(f"mesh '{obj.data.name}' uses absolute shape keys (Evaluation Time); "
                         "SGE Optimizer supports relative shape keys only")
    for kb in _contributing(obj):
        if kb.vertex_group:
            raise InputError(f"shape key '{kb.name}' of '{obj.data.name}' is weighted by vertex group "
                             f"'{kb.vertex_group}'; clear it, mute the key or set its value to 0")


def visible_positions(obj) -> np.ndarray:
    """(n, 3) local positions as shown in Object Mode (shape keys mixed)."""
    mesh = obj.data
    key = mesh.shape_keys
    if key is None:
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        return co.reshape(-1, 3)
    check(obj)
    if obj.show_only_shape_key and obj.active_shape_key is not None:
        return _co(obj.active_shape_key)
    mix = _co(key.reference_key).astype(np.float64)
    for kb in _contributing(obj):
        relative = kb.relative_key if kb.relative_key is not None else key.reference_key
        mix += kb.value * (_co(kb).astype(np.float64) - _co(relative))
    return mix.astype(np.float32)


def target(obj):
    """The key block a result is written into, or None without shape keys."""
    key = obj.data.shape_keys
    if key is None:
        return None
    active = obj.active_shape_key
    if active is not None and active != key.reference_key and (
            obj.show_only_shape_key or (active.value == 1.0 and not active.mute)):
        return active
    return key.reference_key


def target_name(obj) -> str | None:
    block = target(obj)
    return block.name if block is not None else None


def _subtree(key, root) -> list:
    """`root` and the keys whose relative-key chain reaches it."""
    if root == key.reference_key:
        return list(key.key_blocks)
    found = [root]
    for kb in key.key_blocks:
        seen, cur = set(), kb
        while cur is not None and cur != key.reference_key and cur.name not in seen:
            if cur == root and kb != root:
                found.append(kb)
                break
            seen.add(cur.name)
            cur = cur.relative_key
    return found


def write_local(obj, local: np.ndarray) -> None:
    """Make the visible shape `local` (n, 3): see the module docstring."""
    mesh = obj.data
    key = mesh.shape_keys
    if key is None:
        mesh.vertices.foreach_set("co", np.ascontiguousarray(local, np.float32).ravel())
        return
    delta = np.asarray(local, np.float64) - visible_positions(obj)
    for kb in _subtree(key, target(obj)):
        _set_co(kb, _co(kb) + delta)
    # mesh.vertices mirror the Basis, as Blender keeps them.
    mesh.vertices.foreach_set("co", _co(key.reference_key).ravel())


def snapshot(obj) -> list | None:
    """Every key's positions, for `restore`."""
    key = obj.data.shape_keys
    return None if key is None else [_co(kb) for kb in key.key_blocks]


def restore(obj, saved: list | None) -> None:
    key = obj.data.shape_keys
    if saved is None or key is None or len(key.key_blocks) != len(saved):
        return
    for kb, co in zip(key.key_blocks, saved):
        if len(kb.data) == len(co):
            _set_co(kb, co)
