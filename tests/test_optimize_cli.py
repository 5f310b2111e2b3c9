"""tools/optimize.py and tools/demo.py as a user runs them: separate processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

import demo

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def run_tool(*args, timeout=300):
    """Run a tool as a user would, once: a crash fails the test. A fault
    prints the Python stack (PYTHONFAULTHANDLER) into the output that the
    failing assertion shows."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory, backend):
    path = tmp_path_factory.mktemp("cli") / "scene.blend"
    source, collection = demo.build_scene(cameras=4, resolution=48, texture_size=16)
    for cam in collection.objects:  # the capture itself is not blank
        pixels = np.array(cam.data.background_images[0].image.pixels[:]).reshape(-1, 4)
        assert pixels[:, :3].max() > 0.2, cam.name
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    return path


def test_captured_targets_survive_a_save(scene_file):
    bpy.ops.wm.open_mainfile(filepath=str(scene_file))
    try:
        for cam in bpy.data.collections["Targets"].objects:
            image = cam.data.background_images[0].image
            px = np.empty(len(image.pixels), np.float32)
            image.pixels.foreach_get(px)
            assert px.reshape(-1, 4)[:, :3].max() > 0.2, image.name  # not a blank generated image
    finally:
        bpy.ops.wm.read_homefile(use_empty=True, app_template="")


def read_back(path):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects["Source"]
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    image = bpy.data.images["Source Albedo"]
    px = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(px)
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    return co, px


@pytest.mark.parametrize("blender_style", [False, True], ids=["bpy-module", "after-double-dash"])
def test_scripted_run_writes_summary_and_blend(scene_file, tmp_path, blender_style):
    out_blend, out_json = tmp_path / "out.blend", tmp_path / "summary.json"
    flags = ["--object", "Source", "--cameras", "Targets", "--steps", "200", "--resolution", "48",
             "--views-per-step", "2", "--report-every", "10", "--save", out_blend, "--summary", out_json]
    args = [TOOLS / "optimize.py", "--", scene_file, *flags] if blender_style else \
        [TOOLS / "optimize.py", scene_file, *flags]
    result = run_tool(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 10/200" in result.stderr and "steps/s" in result.stderr and "ETA" in result.stderr
    assert "EGL_BAD_MATCH" not in result.stderr  # Mesa's harmless line, dropped at the GPU start
    summary = json.loads(out_json.read_text())
    assert summary["steps"] == 200 and summary["seconds"] > 0
    assert summary["final_loss"] > 0
    assert len(summary["psnr_after"]) == 4
    # 3.5 dB here; a sign-flipped estimator reached 0.6, no gradient 0.
    assert summary["mean_psnr_after"] > summary["mean_psnr_before"] + 1.5, summary
    co0, px0 = read_back(scene_file)
    co1, px1 = read_back(out_blend)
    assert not np.array_equal(co0, co1) and not np.array_equal(px0, px1)
    assert np.all(np.isfinite(co1)) and np.all(np.isfinite(px1))


@pytest.mark.parametrize("flags, words", [
    (["--object", "Nope", "--cameras", "Targets"], "no object named 'Nope'"),
    (["--object", "Source", "--cameras", "Nope"], "no collection named 'Nope'"),
    (["--object", "Targets 00", "--cameras", "Targets"], "not a mesh"),
    (["--object", "Source", "--cameras", "Targets", "--views-per-step", "0"], "views per step"),
    (["--object", "Source", "--cameras", "Targets", "--seed", "-1"], "seed must be a whole number in 0..2147483647"),
    (["--object", "Source", "--cameras", "Targets", "--seed", "2147483648"], "seed must be"),
    (["--object", "Source", "--cameras", "Targets", "--seed", str(2**64)], "seed must be"),
])
def test_bad_input_exits_non_zero_with_a_message(scene_file, flags, words):
    result = run_tool(TOOLS / "optimize.py", scene_file, *flags, "--steps", "2")
    assert result.returncode == 2, result.stderr[-2000:]
    assert words in result.stderr


def test_missing_blend_file(tmp_path):
    result = run_tool(TOOLS / "optimize.py", tmp_path / "none.blend", "--object", "A", "--cameras", "B")
    assert result.returncode == 2 and "not found" in result.stderr


@pytest.mark.parametrize("content", [b"hello\n", "truncated"], ids=["not-a-blend", "truncated"])
def test_a_file_that_is_not_a_blend_is_bad_input(scene_file, tmp_path, content):
    path = tmp_path / "scene.blend"
    path.write_bytes(scene_file.read_bytes()[:50_000] if content == "truncated" else content)
    result = run_tool(TOOLS / "optimize.py", path, "--object", "Source", "--cameras", "Targets")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"'{path}' is not a .blend file, or is damaged" in result.stderr


@pytest.mark.parametrize("flag, path", [("--save", "/proc/nope/out.blend"), ("--summary", "/proc/nope/s.json"),
                                        ("--save", "{tmp}")])
def test_output_paths_are_checked_before_the_first_step(scene_file, tmp_path, flag, path):
    path = path.format(tmp=tmp_path)
    before = scene_file.read_bytes()
    result = run_tool(TOOLS / "optimize.py", scene_file, "--object", "Source", "--cameras", "Targets",
                      "--steps", "100000", "--resolution", "48", flag, path, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{flag} '{path}'" in result.stderr and "step " not in result.stderr
    assert scene_file.read_bytes() == before


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["foreground", "background-job"])
def test_ctrl_c_stops_keeps_the_result_and_exits_130(scene_file, tmp_path, inherited):
    """SIGINT stops the run however the CLI was started. A shell starts a
    background job (`optimize.py ... &` in a script, a suite run in the
    background) with SIGINT ignored, and Python then leaves it ignored: the
    run went on stepping after the signal until the CLI installed its own
    handler."""
    out_blend, out_json = tmp_path / "out.blend", tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, TOOLS / "optimize.py", scene_file, "--object", "Source", "--cameras", "Targets",
         "--steps", "100000", "--resolution", "48", "--report-every", "5",
         "--silhouette-fraction", "0",  # both groups move from the first steps
         "--save", out_blend, "--summary", out_json],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited))
    lines = []
    for line in proc.stderr:  # wait until it is optimizing
        lines.append(line)
        if line.startswith("step 10/"):
            break
    proc.send_signal(signal.SIGINT)
    try:
        rest = proc.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        rest = proc.communicate()[1]
        pytest.fail(f"SIGINT was ignored; the run went on: {rest[-600:]}")
    stderr = "".join(lines) + rest
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "interrupted at step" in stderr
    summary = json.loads(out_json.read_text())
    assert summary["stopped"] is True and 10 <= summary["steps"] < 100000
    co0, px0 = read_back(scene_file)
    co1, px1 = read_back(out_blend)
    assert not np.array_equal(co0, co1) and not np.array_equal(px0, px1)


def test_demo_runs_headless_and_writes_outputs(tmp_path):
    out = tmp_path / "out"
    result = run_tool(TOOLS / "demo.py", "--steps", "200", "--cameras", "8", "--resolution", "64",
                      "--texture-size", "32", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    before = float(result.stdout.split("PSNR before:")[1].split("dB")[0])
    after = float(result.stdout.split("PSNR after:")[1].split("dB")[0])
    assert after > before + 1.2, (before, after)  # 2.3 dB here; a sign-flipped estimator 0.5, none 0
    for name in ("view_00.png", "view_07.png", "loss.png", "loss.svg", "loss.csv", "summary.json", "result.blend"):
        assert (out / name).is_file(), name
    rows = (out / "loss.csv").read_text().strip().splitlines()
    assert rows[0] == "step,loss" and len(rows) >= 2
    assert "step 200/200" in result.stderr  # the last step is printed too
    import xml.etree.ElementTree as ET

    texts = [t.text for t in ET.parse(out / "loss.svg").getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "step" in texts and any(t.startswith("loss") for t in texts)  # axis labels
    assert sum(1 for t in texts if t.replace(".", "").replace("e-", "").isdigit()) >= 4  # tick values


def test_flags_reach_the_settings():
    import optimize

    parse = optimize.build_parser().parse_args
    base = ["--object", "O", "--cameras", "C"]
    assert optimize.settings_from_args(parse(base)).alternate_groups is True
    settings = optimize.settings_from_args(parse(base + ["--no-alternate-groups", "--optimize", "texture"]))
    assert settings.alternate_groups is False and not settings.optimize_positions
    assert optimize.settings_from_args(parse(base)).optimize_normal is False
    lit = optimize.settings_from_args(parse(base + ["--optimize", "texture", "--lit", "--fit-normal"]))
    assert lit.optimize_normal and lit.lit
    lit.validate()


def test_lod_subcommand_refuses_a_missing_object_and_a_bad_ratio(scene_file, tmp_path):
    missing = run_tool(TOOLS / "optimize.py", "lod", scene_file, "--object", "Nope", "--save", tmp_path / "o.blend")
    assert missing.returncode == 2 and "no object named 'Nope'" in missing.stderr
    # A refused run writes nothing: not even --save's or --summary's missing folders.
    for flag, words in (("--ratio", "ratio"), ("--cycles-samples", "Cycles samples")):
        bad = run_tool(TOOLS / "optimize.py", "lod", scene_file, "--object", "Source", flag, "0",
                       "--save", tmp_path / "new" / "o.blend", "--summary", tmp_path / "new2" / "s.json")
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_output_checks_create_nothing_and_name_a_file_in_the_way(tmp_path):
    import optimize

    (tmp_path / "notes.txt").write_text("a file")
    reason = optimize.unwritable_reason(tmp_path / "notes.txt" / "out.blend", "--save")
    assert reason == (f"--save '{tmp_path / 'notes.txt' / 'out.blend'}' cannot be written: "
                      f"'{tmp_path / 'notes.txt'}' is a file, not a directory")
    reason = optimize.unwritable_reason(tmp_path / "notes.txt" / "deeper" / "out.blend", "--save")
    assert "is a file, not a directory" in reason
    assert optimize.unwritable_reason(tmp_path / "new" / "sub" / "out.blend", "--save") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # made when written, not when checked


def test_lod_subcommand_runs_a_file_saved_in_edit_mode(backend, tmp_path):
    """The reference saved in Edit Mode is fitted in Object Mode (api.fit_lod),
    as the panel and the API do; the output's folders are made at the end."""
    import scenes

    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    ref = scenes.lod_reference(bpy.context.scene, segments=16, rings=8, texture=32)
    triangles = sum(len(p.vertices) - 2 for p in ref.data.polygons)
    bpy.context.view_layer.objects.active = ref
    bpy.ops.object.mode_set(mode="EDIT")
    path = tmp_path / "edit.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.wm.read_homefile(use_empty=True, app_template="")
    out_blend, out_json = tmp_path / "out" / "lod.blend", tmp_path / "out" / "json" / "lod.json"
    result = run_tool(TOOLS / "optimize.py", "lod", path, "--object", "Reference", "--ratio", "0.3", "--engine",
                      "cycles", "--cycles-samples", "1", "--views", "1", "--held-out", "1", "--resolution", "16",
                      "--texture-size", "16", "--steps", "2", "--save", out_blend, "--summary", out_json)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out_json.read_text())
    assert summary["triangles_reference"] == triangles and out_blend.is_file()
    assert "Traceback" not in result.stderr
