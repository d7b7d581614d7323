"""Which process owns a piece of work: a token that a restarted process never repeats."""

from __future__ import annotations

import os
from pathlib import Path

from model_store.durable import pid_alive


def _start_ticks(pid: int) -> str | None:
    """When the process started, in clock ticks since boot (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]  # field 22: starttime


def process_token(pid: int | None = None) -> str:
    """'pid:start' of a process (this one by default): a reused pid gets a different token."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_ticks(pid) or '?'}"


def owner_alive(token: object) -> bool:
    """True while the process that wrote `token` (process_token) still runs."""
    if not isinstance(token, str) or ":" not in token:
        return False
    pid_text, start = token.split(":", 1)
    if not pid_text.isascii() or not pid_text.isdigit() or not pid_alive(int(pid_text)):
        return False
    now = _start_ticks(int(pid_text))
    return start == "?" or now is None or now == start
