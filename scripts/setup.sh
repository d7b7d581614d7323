#!/usr/bin/env bash
# One install script for every path (make, CI, Dockerfile): virtualenv, Python deps, ffmpeg.
# Usage: scripts/setup.sh [--system]   (--system: install into the current Python, no virtualenv)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev}

log() { printf 'setup: %s\n' "$*" >&2; }

"$PYTHON" - <<'PY' || { echo "setup: mimi needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ "${1:-}" = "--system" ]; then
  PY="$PYTHON"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
fi

# Python dependencies: reinstall only when pyproject.toml changed.
stamp="$("$PY" -c 'import sys; print(sys.prefix)')/.mimi-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing mimi-bot[$EXTRAS] and its dependencies"
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi

# ffmpeg: Debian's package when we can install it, else a pip-shipped static binary.
if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ffmpeg from Debian"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  elif ! "$PY" -c 'import imageio_ffmpeg' 2>/dev/null; then
    log "no root for apt-get: installing a pip-shipped ffmpeg (imageio-ffmpeg)"
    "$PY" -m pip install --quiet --disable-pip-version-check imageio-ffmpeg
  fi
fi
# The pretrained musicnn front-end: fetch the pinned wheel (sha256-checked) and convert it once.
weights=${MIMI_FRONTEND_WEIGHTS:-pretrained/$("$PY" -c \
  'from model_store.features import WEIGHTS_FILENAME as w; print(w)')}
if [ ! -f "$weights" ]; then
  log "converting the pretrained musicnn weights to $weights"
  "$PY" -m model_store.convert --out "$weights" --wheel-dir "${MIMI_WHEEL_CACHE:-.cache/wheels}" >&2
fi
log "ready"
