"""The Store's SQL for training runs: started, finished, interrupted and listed."""

from __future__ import annotations

import json
from collections.abc import Callable

from bot.store_base import StoreBase
from bot.store_people import now_iso


class RunRows(StoreBase):
    """Mixed into `Store`: one row per training run of a guild."""

    async def close_interrupted_runs(
        self, error: str, owner_alive: Callable[[str], bool]
    ) -> list[int]:
        """Mark 'running' runs whose owning process is gone as failed with `error`; their guilds."""
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                "SELECT id, guild_id, owner FROM training_runs WHERE status = 'running'"
            )
            dead = [(i, g) for i, g, owner in rows if owner is None or not owner_alive(owner)]
            await db.executemany(
                "UPDATE training_runs SET status = 'failed', error = ?, finished_at = ?"
                " WHERE id = ?",
                [(error, now_iso(), i) for i, _ in dead],
            )
        return sorted({g for _, g in dead})

    async def start_run(self, guild_id: int, reason: str, owner: str | None = None) -> int:
        """Record a training run as running (owned by the process `owner`); return its id."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO guilds (id, created_at) VALUES (?, ?)", (guild_id, now_iso())
            )
            cur = await db.execute(
                "INSERT INTO training_runs (guild_id, status, reason, started_at, owner)"
                " VALUES (?, 'running', ?, ?, ?)",
                (guild_id, reason, now_iso(), owner),
            )
            return cur.lastrowid

    async def finish_run(
        self,
        guild_id: int,
        run_id: int,
        *,
        error: str | None = None,
        model_version: int | None = None,
        metrics: dict | None = None,
    ) -> None:
        """Mark a run succeeded (with its model version and metrics) or failed (with the reason)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE training_runs SET status = ?, error = ?, model_version = ?, metrics = ?,"
                " finished_at = ? WHERE guild_id = ? AND id = ?",
                (
                    "failed" if error else "succeeded",
                    error,
                    model_version,
                    json.dumps(metrics) if metrics is not None else None,
                    now_iso(),
                    guild_id,
                    run_id,
                ),
            )

    async def runs(self, guild_id: int, limit: int = 20) -> list[dict]:
        """This guild's most recent training runs, newest first."""
        rows = await self._all(
            "SELECT id, status, reason, started_at, finished_at, model_version, error, metrics"
            " FROM training_runs WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            guild_id,
            limit,
        )
        keys = ("id", "status", "reason", "started_at", "finished_at", "model_version", "error")
        return [
            {**dict(zip(keys, r[:7], strict=True)), "metrics": json.loads(r[7]) if r[7] else None}
            for r in rows
        ]
