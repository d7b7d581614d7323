# mimi for a home server: `docker compose up -d` (see docker-compose.yml).
# Every install step is scripts/setup.sh, the same script `make` and CI run.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MIMI_DATA_DIR=/data \
    MIMI_FRONTEND_WEIGHTS=/opt/mimi/pretrained/musicnn_msd_mtt_v2.weights.h5
# Optional extras besides the runtime dependencies, e.g. --build-arg EXTRAS=dev.
ARG EXTRAS=""

# An unprivileged user, and the data folders it owns: new named volumes mounted there copy this
# ownership.
RUN groupadd --system --gid 10001 mimi \
    && useradd --system --uid 10001 --gid mimi --create-home --shell /usr/sbin/nologin mimi \
    && mkdir -p /data/cache /data/models \
    && chown -R mimi:mimi /data

WORKDIR /opt/mimi/src
# Layers from least to most often changed, so a code change reuses the heavy ones.
# 1. ffmpeg and the Noto fonts (names in every script) from Debian (apt lists removed).
COPY scripts/setup.sh scripts/
RUN bash scripts/setup.sh --system ffmpeg fonts
# 2. The Python dependencies only (TensorFlow & co.): rebuilt when pyproject.toml changes.
COPY pyproject.toml ./
RUN EXTRAS="$EXTRAS" bash scripts/setup.sh --system deps
# 3. The pretrained musicnn front-end, fetched and converted now (the container needs no network
#    but Discord's); the wheel goes to a temporary folder. Rebuilt when model_store/ changes.
COPY model_store/ model_store/
RUN MIMI_WHEEL_CACHE= bash scripts/setup.sh --system weights
# 4. mimi itself, installed as a copy.
COPY . .
RUN bash scripts/setup.sh --system --no-editable package

USER mimi
WORKDIR /data
# discord.py closes the gateway and the worker pools on SIGTERM (compose's init forwards it).
STOPSIGNAL SIGTERM
# Start-up warms one audio worker (ONNX Runtime, about a second); TensorFlow loads only when a
# training starts. A generous 2 minutes before failures count (a slow disk, a busy host).
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 CMD ["mimi", "health"]
# No DISCORD_TOKEN: `mimi run` stays up, unhealthy, logging once a minute what to put in .env,
# instead of exiting into a restart loop (set here, not at the top: no layer is rebuilt for it).
ENV MIMI_WAIT_FOR_TOKEN=1
CMD ["mimi", "run"]
