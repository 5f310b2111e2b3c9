# Sourced by tools/dev.sh and lab/peers/setup_mitsuba.sh.

# find_python VERSION: print a Python VERSION interpreter with venv (pyenv's
# first), or fail with a message.
find_python() {
  local version="$1"
  local candidates=("python$version")
  if command -v pyenv >/dev/null 2>&1; then
    for dir in "$(pyenv root)"/versions/"$version"*; do
      [ -x "$dir/bin/python$version" ] && candidates=("$dir/bin/python$version" "${candidates[@]}")
    done
  fi
  for py in "${candidates[@]}"; do
    if "$py" -c 'import venv' >/dev/null 2>&1; then echo "$py"; return 0; fi
  done
  echo "error: Python $version is needed (install it, e.g. with pyenv)" >&2
  return 1
}

# ensure_venv VENV "VERSION..." IMPORTS PACKAGE...: unless VENV's Python can
# already `import IMPORTS`, make VENV with the first Python VERSION found and
# pip install the packages.
ensure_venv() {
  local venv="$1" versions="$2" imports="$3" python="" version
  shift 3
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $imports" >/dev/null 2>&1; then
    return 0
  fi
  for version in $versions; do
    python="$(find_python "$version" 2>/dev/null)" && break
  done
  [ -n "$python" ] || { find_python "${versions%% *}"; return 1; }
  echo "setting up $venv with $python: $*" >&2
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "$@"
}
