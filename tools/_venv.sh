# Sourced by tools/*: make sure .venv exists and holds this package with the given extras.
# Re-installs only when pyproject.toml changed since the last install.
VENV="${VENV:-$PWD/.venv}"
ensure_venv() {
  local extras="${1:-}"
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "smpp-bridge needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-${extras:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    local log="$VENV/install.log"
    echo "installing smpp-bridge${extras:+[$extras]} into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >"$log" 2>&1 || true
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}" >>"$log" 2>&1; then
      cat "$log" >&2
      echo "installing smpp-bridge failed (log above, kept in $log)" >&2
      exit 1
    fi
    touch "$stamp"
  fi
}
