"""Running the real `python -m bot` as its own process from async tests (the loop keeps going)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path


def mimi_env(data: Path, weights: Path, **extra: str) -> dict[str, str]:
    """The environment of a real `python -m bot` process: ours minus any MIMI_/DISCORD_ knob."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMI_", "DISCORD_"))}
    return {
        **env,
        "MIMI_DATA_DIR": str(data),
        "MIMI_FRONTEND_WEIGHTS": str(weights),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


async def cli(env: dict[str, str], *args: str, preexec: Callable[[], None] | None = None):
    """Run `python -m bot ARGS` (cwd outside the repo: no .env); (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        cwd=Path(env["MIMI_DATA_DIR"]).parent, env=env, preexec_fn=preexec,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode, out.decode(), err.decode()
