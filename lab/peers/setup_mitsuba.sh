#!/usr/bin/env bash
# Benchmark-only setup for the Mitsuba 3 peer (lab/peers/mitsuba_fit.py).
# Never run by the extension, tools/dev.sh, the tests or CI. Idempotent.
#   bash lab/peers/setup_mitsuba.sh
# Mitsuba's llvm_ad_rgb variant needs LLVM >= 16 at run time (with LLVM 15 it aborts with
# "Cannot select fmaximum"); Debian's libllvm19 works. mitsuba_fit.py finds libLLVM-19.so itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=".venv-peers"
PYVER="3.13"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg -s libllvm19 >/dev/null 2>&1; then
  $SUDO apt-get update
  $SUDO apt-get install -y libllvm19
fi

source tools/python_env.sh

# cholespy: mi.ad.LargeSteps (the joint fit's regularizer); matplotlib: plot_trace.py
ensure_venv "$VENV" "$PYVER 3" "mitsuba, drjit, numpy, matplotlib, cholespy" \
  mitsuba numpy matplotlib cholespy

LLVM="$(dpkg -L libllvm19 | grep 'libLLVM-19\.so' | head -n1)"
DRJIT_LIBLLVM_PATH="${DRJIT_LIBLLVM_PATH:-$LLVM}" "$VENV/bin/python" - <<'PY'
import mitsuba as mi, drjit as dr
mi.set_variant("llvm_ad_rgb")
print(f"mitsuba {mi.__version__}, drjit {dr.__version__}: llvm_ad_rgb ok")
PY
