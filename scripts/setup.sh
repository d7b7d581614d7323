#!/usr/bin/env bash
# One install script for every path (make, CI, Dockerfile). See `scripts/setup.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS-dev,dask}  # unset: dev,dask; set but empty (Docker): no extras
ALL_STEPS=(ffmpeg fonts deps package weights)
FONT_PACKAGES=(fonts-noto-core fonts-noto-cjk)  # Latin/Greek/Cyrillic/Arabic/Hebrew…; CJK

usage() {
  cat <<'EOF'
usage: scripts/setup.sh [--system] [--editable|--no-editable] [STEP...]

Installs mimi. With no STEP, runs every step in this order (what `make setup` does):

steps:
  ffmpeg    ffmpeg from Debian (apt-get, as root), else pip's imageio-ffmpeg; skipped if on PATH
  fonts     Noto fonts for names in every script (Debian, as root); else says what to install
  deps      only the dependencies in pyproject.toml (+ extras in $EXTRAS, default dev,dask)
  package   mimi itself, pip install --no-deps (needs deps first)
  weights   fetch the pinned musicnn wheel, convert it (Keras .weights.h5 + ONNX), unless present

test-only step (never run by default; `make test` runs it):
  browser   headless Chromium for the playground's browser test: Debian's chromium and
            chromium-driver (as root); else that test is skipped

options:
  --system       install into $PYTHON itself instead of the virtualenv $VENV
  --editable     install the package editable (the default)
  --no-editable  install a copy of the package (Docker)
  -h, --help     this text

environment: PYTHON (python3), VENV (.venv), EXTRAS (dev,dask; comma-separated, may be empty),
  MIMI_FRONTEND_WEIGHTS (pretrained/<file>), MIMI_WHEEL_CACHE (.cache/wheels; empty: temporary).
deps and an editable package are skipped while pyproject.toml is unchanged (sha256 stamp).
EOF
}

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 2; }

system=0 editable=1 steps=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --system) system=1 ;;
    --editable) editable=1 ;;
    --no-editable) editable=0 ;;
    ffmpeg | fonts | deps | package | weights | browser) steps+=("$arg") ;;
    *) die "unknown option or step: $arg (see scripts/setup.sh --help)" ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=("${ALL_STEPS[@]}")

"$PYTHON" - <<'PY' || { echo "setup: mimi needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ "$system" = 1 ]; then
  PY="$PYTHON"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
fi
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
prefix="$("$PY" -c 'import sys; print(sys.prefix)')"
pyproject_sha() { sha256sum pyproject.toml | cut -d' ' -f1; }

# Run "$@" unless the stamp file $1 already holds $2; record $2 after success.
stamped() {
  local stamp="$prefix/$1" want="$2"
  shift 2
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  "$@"
  echo "$want" >"$stamp"
}

step_ffmpeg() {
  command -v ffmpeg >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ffmpeg from Debian"
    local had_lists=0
    [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$')" ] \
      && had_lists=1
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
    # Leave no package lists behind where there were none (a Docker layer).
    [ "$had_lists" = 1 ] || rm -rf /var/lib/apt/lists/*
  elif ! "$PY" -c 'import imageio_ffmpeg' 2>/dev/null; then
    log "no root for apt-get: installing a pip-shipped ffmpeg (imageio-ffmpeg)"
    "${PIP[@]}" imageio-ffmpeg
  fi
}

have_fonts() {
  local root
  for root in /usr/share/fonts /usr/local/share/fonts "$HOME/.local/share/fonts" "$HOME/.fonts"; do
    [ -d "$root" ] || continue
    find "$root" -name NotoSansCJK-Regular.ttc -print -quit | grep -q . \
      && find "$root" -name NotoSans-Regular.ttf -print -quit | grep -q . && return 0
  done
  return 1
}

step_fonts() {
  have_fonts && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Noto fonts from Debian (${FONT_PACKAGES[*]})"
    local had_lists=0
    [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$')" ] \
      && had_lists=1
    # Fonts make pictures complete but nothing depends on them: a failed download is a warning.
    if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install \
      -y -qq --no-install-recommends "${FONT_PACKAGES[@]}" >/dev/null; }; then
      log "warning: could not install ${FONT_PACKAGES[*]}; names outside Latin will be boxes"
    fi
    [ "$had_lists" = 1 ] || rm -rf /var/lib/apt/lists/*
  else
    log "no root for apt-get: names outside Latin will be drawn as boxes until Noto fonts are"
    log "installed (sudo apt-get install ${FONT_PACKAGES[*]}, or copy NotoSans-Regular.ttf and"
    log "NotoSansCJK-Regular.ttc into ~/.local/share/fonts)"
  fi
}

install_deps() {
  log "installing the dependencies of mimi-bot${EXTRAS:+[$EXTRAS]}"
  "${PIP[@]}" --upgrade pip
  # Requirements from pyproject.toml: build backend, runtime, selected extras (one per line).
  local text reqs
  text=$(EXTRAS="$EXTRAS" "$PY" - <<'PY'
import os, tomllib
with open("pyproject.toml", "rb") as fh:
    doc = tomllib.load(fh)
optional = doc["project"].get("optional-dependencies", {})
reqs = [*doc["build-system"]["requires"], *doc["project"]["dependencies"]]
for extra in filter(None, (e.strip() for e in os.environ["EXTRAS"].split(","))):
    if extra not in optional:
        raise SystemExit(f"setup: no extra {extra!r} in pyproject.toml")
    reqs += optional[extra]
print("\n".join(reqs))
PY
  )
  mapfile -t reqs <<<"$text"
  "${PIP[@]}" "${reqs[@]}"
  rm -f "$prefix/.mimi-installed"  # the stamp of the pre-steps script
}

step_deps() { stamped .mimi-deps "$(pyproject_sha) $EXTRAS" install_deps; }

install_package() {
  log "installing mimi-bot itself ($*)"
  "${PIP[@]}" --no-deps --no-build-isolation "$@"
}

step_package() {
  if [ "$editable" = 1 ]; then
    stamped .mimi-package "$(pyproject_sha) editable $PWD" install_package --editable .
  else
    local had_build=0
    [ -e build ] && had_build=1
    install_package .  # a copy: always reinstalled, since the source may have changed
    [ "$had_build" = 1 ] || rm -rf build  # setuptools' scratch folder
  fi
}

step_browser() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing headless Chromium from Debian (chromium chromium-driver) for the browser test"
    if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install \
        -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
      log "could not install chromium: the playground's browser test will be skipped"
    fi
  else
    log "no root for apt-get: the playground's browser test is skipped until chromium and"
    log "chromium-driver are installed (sudo apt-get install chromium chromium-driver)"
  fi
}

step_weights() {
  local weights wheels lean
  weights=${MIMI_FRONTEND_WEIGHTS:-pretrained/$("$PY" -c \
    'from model_store.features import WEIGHTS_FILENAME as w; print(w)')}
  lean=$("$PY" -c 'import sys; from model_store.lean import frontend_model_path as f
print(f(sys.argv[1]))' "$weights")
  [ -f "$weights" ] && [ -f "$lean" ] && return 0
  log "converting the pretrained musicnn weights to $weights and exporting $lean"
  wheels=${MIMI_WHEEL_CACHE-.cache/wheels}
  # Without --wheel-dir the wheel goes to a temporary folder, removed after conversion.
  "$PY" -m model_store.convert --out "$weights" ${wheels:+--wheel-dir "$wheels"} >&2
}

for step in "${steps[@]}"; do
  "step_$step"
done
log "ready (${steps[*]})"
