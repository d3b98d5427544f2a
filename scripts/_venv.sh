# Sourced by scripts/demo, scripts/test and scripts/bench: a project virtual environment in .venv, created on
# first use and re-installed whenever pyproject.toml changes, so each command works on a fresh
# machine with nothing but Python 3.11+.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

ensure_venv() {  # ensure_venv EXTRAS  (e.g. "demo" or "test")
    local extras="$1" stamp want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)-$extras"
    stamp="$VENV/.installed-$extras"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2; exit 1; }
        "$PYTHON" -m venv "$VENV"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        # The installers' warnings go to a log, shown only if the install fails: what a
        # newcomer reads first is the demo's or the tests' own output.
        local log="$VENV/install.log"
        echo "Installing the project into $VENV (first run, or pyproject.toml changed)…" >&2
        if ! { "$VENV/bin/python" -m pip install --quiet --upgrade pip \
                && "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]"; } > "$log" 2>&1; then
            cat "$log" >&2
            echo "Installing failed; the output above is also in $log" >&2
            exit 1
        fi
        echo "$want" > "$stamp"
    fi
}
