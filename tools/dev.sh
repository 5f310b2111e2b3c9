#!/usr/bin/env bash
# Set up a virtual environment with the bpy wheel and run the tests or the demo.
#   bash tools/dev.sh test [pytest args]     # the test suite (Blender 5.2 LTS)
#   bash tools/dev.sh demo [demo args]       # the demo, writes out/
#   bash tools/dev.sh python lab/evaluate.py # a lab script (lab/README.md)
#   BLENDER=4.5 bash tools/dev.sh test       # the same on Blender 4.5 LTS
set -euo pipefail
cd "$(dirname "$0")/.."

BLENDER="${BLENDER:-5.2}"
case "$BLENDER" in
  5.2) BPY="bpy==5.2.3"; PYVER="3.13"; VENV=".venv" ;;
  4.5) BPY="bpy==4.5.4"; PYVER="3.11"; VENV=".venv-4.5" ;;
  *) echo "BLENDER must be 5.2 or 4.5" >&2; exit 2 ;;
esac

source tools/python_env.sh

# The bpy wheel is ~400 MB. PyOpenGL: only for the Blender-free backend and its
# tests, never needed inside Blender.
ensure_venv "$VENV" "$PYVER" "bpy, numpy, pytest, OpenGL" "$BPY" numpy pytest PyOpenGL

# Without a GPU, the gpu module runs on Mesa llvmpipe (software OpenGL).
cmd="${1:-test}"
shift || true
case "$cmd" in
  test) exec "$VENV/bin/python" -m pytest "$@" ;;
  demo) exec "$VENV/bin/python" tools/demo.py "$@" ;;
  python) exec "$VENV/bin/python" "$@" ;;
  *) echo "usage: tools/dev.sh test|demo|python [args]" >&2; exit 2 ;;
esac
