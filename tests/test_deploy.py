"""Docker packaging, checked by parsing: Dockerfile, docker-compose.yml, .dockerignore, setup.sh."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

from bot.cli import build_parser
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
    """The only service of docker-compose.yml."""
    services = compose()["services"]
    assert len(services) == 1, services
    return next(iter(services.values()))


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
    """`bash scripts/setup.sh --help` succeeds and lists ffmpeg, deps, package and weights."""
    assert setup_steps() == ["ffmpeg", "deps", "package", "weights"]
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
    assert service["build"] == "." and service["image"] == "mimi:latest"
    assert service["restart"] == "unless-stopped"
    assert service["init"] is True
    assert service["stop_grace_period"]


def test_compose_memory_limit() -> None:
    """mem_limit parses as a size of at least 1 GiB (three TensorFlow workers need room)."""
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
