# Sourced by tools/dev.sh and tools/peers/setup_mitsuba.sh.
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
