#!/usr/bin/env bash
# The GPU figures in the README: lab/bench.py and lab/compare_mitsuba.py on an
# NVIDIA machine with no Blender (the bpy wheel is too big to carry), so SGE runs
# on the PyOpenGL/EGL backend and Mitsuba on cuda_ad_rgb. Benchmark only.
#
# Expects, in the checkout (both git-ignored; made where the registries are reached):
#   .gl/*.deb          libglvnd's libEGL/libOpenGL (the driver brings its own ICD):
#                      apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
#   .whl/site.tar.xz   PyOpenGL, drjit, mitsuba, cholespy for the machine's Python (3.12):
#                      pip download --no-deps --only-binary=:all: --python-version 3.12
#                      --platform manylinux_2_28_x86_64 ...; unzip each wheel into one
#                      folder, delete mitsuba's variants but cuda_ad_rgb and scalar_rgb
#                      (and the big unused plugins) to stay under 64 MiB, tar cJf.
# Writes the tables to $OUT (or out/gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/site && tar xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 PYOPENGL_PLATFORM=egl SGE_PEER_PYTHON=python3
nvidia-smi -L | tee "$OUT/machine.txt"
python3 tools/engine_standalone.py --steps 20 --platform device 2>&1 | tee "$OUT/standalone.txt" || exit 1
python3 lab/peers/gpu_kernels_check.py --platform device 2>&1 | tee "$OUT/gpu_kernels_check.txt"
timeout "${BENCH_SECONDS:-150}" python3 lab/bench.py --backend pyopengl 2>&1 | tee "$OUT/bench.txt"
timeout "${COMPARE_SECONDS:-300}" python3 lab/compare_mitsuba.py --backend pyopengl \
  --mitsuba-variant cuda_ad_rgb --seconds "${FIT_SECONDS:-30}" 2>&1 | tee "$OUT/compare_mitsuba.txt"
cp out/peers/results.json out/peers/psnr_time.png "$OUT/" 2>/dev/null
exit 0
