"""Docker packaging, checked by parsing: Dockerfile, docker-compose.yml, .dockerignore, setup.sh."""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

from bot.cli import build_parser
from bot.config import Settings
from bot.health import read_heartbeat
from bot.runner import NO_TOKEN_HEALTH, wait_for_token
from model_store.features import WEIGHTS_FILENAME

ROOT = Path(__file__).resolve().parents[1]
SETUP = "scripts/setup.sh"
INSTALLERS = {"pip", "pip3", "apt-get", "apt", "apk", "curl", "wget", "model_store.convert"}


@cache
def setup_help() -> str:
    """The real `scripts/setup.sh --help` text."""
    done = subprocess.run(
        ["bash", SETUP, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def setup_steps() -> list[str]:
    """The step names that `scripts/setup.sh --help` lists under `steps:`."""
    section = setup_help().split("\nsteps:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def compose_service() -> dict:
    """The bot's service of docker-compose.yml (the only one outside a profile)."""
    services = compose()["services"]
    always = [name for name, svc in services.items() if not svc.get("profiles")]
    assert always == ["mimi"], services
    return services["mimi"]


def test_dask_profile_runs_the_same_image_without_data() -> None:
    """`--profile dask` adds a scheduler and a worker from the bot's image (built with the dask
    extra); the worker mounts no data volume: jobs reach it as plain data."""
    services = compose()["services"]
    assert services["mimi"]["build"]["args"]["EXTRAS"] == "dask"
    for name in ("dask-scheduler", "dask-worker"):
        assert services[name]["profiles"] == ["dask"]
        assert services[name]["image"] == services["mimi"]["image"]
        assert "volumes" not in services[name]
    assert services["dask-worker"]["command"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert services["dask-scheduler"]["command"][:2] == ["dask", "scheduler"]


def compose() -> dict:
    """docker-compose.yml, parsed."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, value) pairs in order, comments left out."""
    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    pairs = [(i["instruction"], i["value"]) for i in parser.structure]
    return [(kind, value) for kind, value in pairs if kind != "COMMENT"]


def index_of(kind: str, last: bool = False) -> int:
    """Position of the first (or last) instruction of this kind."""
    found = [n for n, (k, _) in enumerate(instructions()) if k == kind]
    assert found, f"no {kind} in the Dockerfile"
    return found[-1] if last else found[0]


def setup_calls(command: str) -> list[list[str]]:
    """Arguments of each `scripts/setup.sh` call in a shell command; fails on other installers."""
    calls, segment = [], []
    for token in [*shlex.split(command), ";"]:
        if token not in ("&&", "||", ";", "|"):
            segment.append(token)
            continue
        at = [n for n, t in enumerate(segment) if t.endswith(SETUP)]
        if at:
            calls.append(segment[at[0] + 1 :])
        else:
            assert not INSTALLERS & set(segment), f"installs outside {SETUP}: {command}"
        segment = []
    return calls


def run_calls() -> list[tuple[int, list[str]]]:
    """(instruction index, setup.sh arguments) for every setup.sh call in a RUN."""
    return [
        (n, args)
        for n, (kind, value) in enumerate(instructions())
        if kind == "RUN"
        for args in setup_calls(value)
    ]


def mem_bytes(value: str | int) -> int:
    """A compose memory size ("3g", "512m", 1073741824) in bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", str(value).strip().lower())
    assert match, f"unparseable mem_limit {value!r}"
    return int(float(match[1]) * 1024 ** "bkmg".index(match[2] or "b"))


def mounts() -> dict[str, str]:
    """Container path -> source of each volume of the service (short or long syntax)."""
    out = {}
    for volume in compose_service()["volumes"]:
        if isinstance(volume, dict):
            out[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            out[target] = source
    return out


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options and its command as an argument list."""
    (value,) = [v for k, v in instructions() if k == "HEALTHCHECK"]
    options, command = re.split(r"\bCMD\b", value, maxsplit=1)
    opts = dict(o.lstrip("-").split("=", 1) for o in shlex.split(options))
    command = command.strip()
    return opts, json.loads(command) if command.startswith("[") else shlex.split(command)


def test_setup_help_lists_every_step() -> None:
    """`bash scripts/setup.sh --help` succeeds and lists ffmpeg, deps, package and weights, and
    apart from them the test-only browser step (which the image never runs)."""
    assert setup_steps() == ["ffmpeg", "fonts", "deps", "package", "weights"]
    test_only = setup_help().split("\ntest-only step", 1)[1]
    assert "\n  browser " in test_only
    assert "--system" in setup_help() and "--no-editable" in setup_help()


def test_setup_rejects_an_unknown_step() -> None:
    """An unknown step is a usage error (exit 2), before anything is installed."""
    done = subprocess.run(
        ["bash", SETUP, "nope"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "nope" in done.stderr


def test_compose_service_basics() -> None:
    """The single service reads .env, restarts unless stopped, runs under init, stops gracefully."""
    service = compose_service()
    env_file = service["env_file"]
    assert (env_file if isinstance(env_file, list) else [env_file]) == [".env"]
    assert service["build"]["context"] == "." and service["image"] == "mimi:latest"
    assert service["restart"] == "unless-stopped"
    assert service["init"] is True
    assert service["stop_grace_period"]


def test_compose_memory_limit() -> None:
    """mem_limit parses as a size of at least 1 GiB (audio worker + training worker need room)."""
    assert mem_bytes(compose_service()["mem_limit"]) >= 1024**3


def test_compose_log_rotation() -> None:
    """Logs go to json-file with a size cap and a file count, so they cannot fill the disk."""
    logging = compose_service()["logging"]
    assert logging["driver"] == "json-file"
    assert {"max-size", "max-file"} <= set(logging["options"])
    assert int(logging["options"]["max-file"]) >= 1


def test_compose_named_volumes() -> None:
    """Database, cache and models each live on a declared named volume; backups on a bind mount."""
    found = mounts()
    declared = set(compose().get("volumes") or {})
    for target in ("/data", "/data/cache", "/data/models"):
        assert target in found, target
        assert found[target] in declared, f"{target}: {found[target]} is not a named volume"
    assert len({found[t] for t in ("/data", "/data/cache", "/data/models")}) == 3
    assert found["/backups"].startswith(".")


def test_compose_paths_match_the_image() -> None:
    """Compose pins the data dir and weights to the image's, so a copied .env cannot move them."""
    env = compose_service().get("environment") or {}
    env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
    image_env = DockerfileParser(str(ROOT / "Dockerfile")).envs
    for key in ("MIMI_DATA_DIR", "MIMI_FRONTEND_WEIGHTS"):
        assert env.get(key, image_env[key]) == image_env[key], key


def test_dockerfile_base_and_environment() -> None:
    """The image is python:3.11-slim, unbuffered, with its data in /data."""
    parser = DockerfileParser(str(ROOT / "Dockerfile"))
    assert parser.baseimage.startswith("python:3.11-slim")
    assert parser.envs["MIMI_DATA_DIR"] == "/data"
    assert parser.envs["PYTHONUNBUFFERED"] == "1"


def test_dockerfile_weights_path_is_where_the_build_writes() -> None:
    """MIMI_FRONTEND_WEIGHTS is an absolute path to this version's weights, set before the step."""
    weights = DockerfileParser(str(ROOT / "Dockerfile")).envs["MIMI_FRONTEND_WEIGHTS"]
    assert weights.startswith("/") and Path(weights).name == WEIGHTS_FILENAME
    env_at = [n for n, (k, v) in enumerate(instructions()) if k == "ENV" and "MIMI_FRONTEND" in v]
    steps_at = [n for n, args in run_calls() if "weights" in args]
    assert steps_at and env_at and max(env_at) < min(steps_at)
    # setup.sh writes to $MIMI_FRONTEND_WEIGHTS; no RUN may point it elsewhere.
    assert not any("MIMI_FRONTEND_WEIGHTS" in v for k, v in instructions() if k == "RUN")


def test_dockerfile_runs_as_mimi_not_root() -> None:
    """A non-root USER is set before CMD, after /data and its subfolders are made and owned."""
    user = instructions()[index_of("USER", last=True)][1].split(":")[0]
    assert user not in ("root", "0")
    assert index_of("USER", last=True) < index_of("CMD")
    prepare = [
        n
        for n, (k, v) in enumerate(instructions())
        if k == "RUN" and "/data/cache" in v and "/data/models" in v and "chown" in v
    ]
    assert prepare and prepare[0] < index_of("USER", last=True)


def test_dockerfile_cmd_and_healthcheck() -> None:
    """CMD is `mimi run`; HEALTHCHECK runs `mimi health` with a generous start period."""
    assert json.loads(instructions()[index_of("CMD")][1]) == ["mimi", "run"]
    opts, command = healthcheck()
    assert command[-2:] == ["mimi", "health"]
    assert {"interval", "timeout", "start-period", "retries"} <= set(opts)
    assert int(opts["start-period"].rstrip("s")) >= 120


def test_dockerfile_installs_only_through_setup_sh() -> None:
    """Every install RUN is scripts/setup.sh --system with listed steps, and all steps run."""
    calls = run_calls()
    used = [a for _, args in calls for a in args if not a.startswith("-")]
    assert set(used) <= set(setup_steps())
    assert set(used) == set(setup_steps()), "every step runs in the image"
    assert all("--system" in args for _, args in calls)
    package = [args for _, args in calls if "package" in args]
    assert package and all("--no-editable" in args for args in package)


def test_dockerfile_deps_layer_is_cached() -> None:
    """Dependencies install before the full source COPY, after copying only what they need."""
    full_copy = next(
        n for n, (k, v) in enumerate(instructions()) if k == "COPY" and v.split()[0] in (".", "./")
    )
    (deps_at,) = [n for n, args in run_calls() if "deps" in args]
    assert deps_at < full_copy
    copied = [v.split()[:-1] for k, v in instructions()[:deps_at] if k == "COPY"]
    assert {src for sources in copied for src in sources} <= {"pyproject.toml", SETUP}
    (package_at,) = [n for n, args in run_calls() if "package" in args]
    assert package_at > full_copy


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    """.dockerignore excludes the token file, the virtualenv and local data (and caches)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = {p.strip().strip("/") for p in lines if p.strip() and not p.startswith("#")}
    assert {".env", ".venv", "data", ".git", "pretrained", ".cache"} <= patterns


def test_healthcheck_command_exists_in_the_cli() -> None:
    """The HEALTHCHECK's `mimi health` is a real subcommand of the mimi CLI."""
    _, command = healthcheck()
    args = build_parser().parse_args(command[command.index("mimi") + 1 :])
    assert args.command == "health"


def compose_environment() -> dict[str, str]:
    """The service's `environment:` as a dict (map or list syntax)."""
    env = compose_service().get("environment") or {}
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else env


def test_compose_and_image_wait_for_a_missing_token() -> None:
    """A .env without DISCORD_TOKEN must not become a restart loop: compose and the image both
    turn on MIMI_WAIT_FOR_TOKEN, which parses as true."""
    composed = str(compose_environment().get("MIMI_WAIT_FOR_TOKEN"))
    image = DockerfileParser(str(ROOT / "Dockerfile")).envs.get("MIMI_WAIT_FOR_TOKEN")
    for value in (composed, image):
        assert value is not None
        assert Settings.load(environ={"MIMI_WAIT_FOR_TOKEN": value}, env_file=None).wait_for_token


def test_compose_file_parses_in_compose_v1() -> None:
    """Debian's docker-compose 1.29 reads the file as well as `docker compose` v2: no key newer
    than 1.27's Compose-spec support (top-level `name:` needs 1.28+/v2, `profiles` 1.28,
    long-syntax `env_file` with `required` 2.24), and keys that v1 knows."""
    data = compose()
    assert set(data) <= {"services", "volumes"}, set(data)
    service = compose_service()
    v1_service_keys = {
        "build", "image", "env_file", "environment", "volumes", "restart", "init", "mem_limit",
        "stop_grace_period", "logging", "healthcheck", "command", "ports",
    }  # fmt: skip
    assert set(service) <= v1_service_keys, set(service) - v1_service_keys
    env_file = service["env_file"]
    assert all(isinstance(e, str) for e in (env_file if isinstance(env_file, list) else [env_file]))
    assert all(isinstance(v, str) for v in compose_environment().values())


def _mimi_env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMI_", "DISCORD_"))}
    return {**env, "MIMI_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", **extra}


def _read_until(proc: subprocess.Popen, text: str, timeout: float) -> str:
    """stderr of `proc` until `text` appears (or the process ends / time runs out)."""
    seen, deadline = "", time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while text not in seen and time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                chunk = os.read(proc.stderr.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk.decode(errors="replace")
    return seen


def test_run_without_token_waits_unhealthy_until_sigterm(tmp_path: Path) -> None:
    """`mimi run` with MIMI_WAIT_FOR_TOKEN=1 and no token says what to put in .env, stays up,
    `mimi health` fails (the heartbeat says no DISCORD_TOKEN), and SIGTERM ends it with 0."""
    data = tmp_path / "data"
    env = _mimi_env(data, MIMI_WAIT_FOR_TOKEN="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,  # no .env here
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        said = _read_until(proc, "DISCORD_TOKEN=<your bot token> in .env", 60)
        assert "DISCORD_TOKEN is not set" in said and "Waiting" in said, said
        time.sleep(3)
        assert proc.poll() is None, "mimi run exited instead of waiting"
        beat = read_heartbeat(data / "health.json")
        assert beat and beat["state"] == "waiting" and beat["pid"] == proc.pid
        assert "no DISCORD_TOKEN" in beat["detail"]
        health = subprocess.run(
            [sys.executable, "-m", "bot", "health"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert health.returncode == 1, health.stdout + health.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert read_heartbeat(data / "health.json")["state"] == "stopped"


def test_health_names_the_missing_token(tmp_path: Path) -> None:
    """`mimi health` on a waiting heartbeat fails with "no DISCORD_TOKEN" as the bot's detail."""
    import asyncio

    from bot.health import check

    settings = Settings.load(environ={}, env_file=None, data_dir=tmp_path / "data")
    stop = threading.Event()
    waiter = threading.Thread(target=wait_for_token, args=(settings,), kwargs={"stop": stop})
    waiter.start()
    try:
        deadline = time.monotonic() + 10
        while read_heartbeat(tmp_path / "data" / "health.json") is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        report = asyncio.run(check(settings))
    finally:
        stop.set()
        waiter.join()
    bot = next(c for c in report.checks if c.name == "bot")
    assert not report.ok and not bot.ok
    assert bot.detail == NO_TOKEN_HEALTH


def test_wait_for_token_repeats_the_instruction(tmp_path: Path) -> None:
    """The instruction is logged once per interval (a minute by default), not once or in a loop."""
    settings = Settings.load(environ={}, env_file=None, data_dir=tmp_path / "data")
    stop, said = threading.Event(), []

    class Said(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "DISCORD_TOKEN is not set" in record.getMessage():
                said.append(time.monotonic())
                if len(said) == 3:
                    stop.set()

    handler, logger = Said(logging.WARNING), logging.getLogger("bot.runner")
    logger.addHandler(handler)
    try:
        assert wait_for_token(settings, log_every_s=0.2, beat_every_s=0.05, stop=stop) == 0
    finally:
        logger.removeHandler(handler)
    assert said[2] - said[0] >= 0.4 - 0.01  # three lines, an interval apart
    assert read_heartbeat(tmp_path / "data" / "health.json")["state"] == "stopped"


def test_run_without_token_or_setting_still_exits(tmp_path: Path) -> None:
    """Without MIMI_WAIT_FOR_TOKEN, `mimi run` keeps today's one-line error and exit 1."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=_mimi_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "DISCORD_TOKEN is not set" in done.stderr
