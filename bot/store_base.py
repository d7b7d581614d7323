"""What every part of the Store shares: the connection, its lock, and how a statement runs
(`_tx` for a write transaction, `_all` for a read)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite


class StoreBase:
    """The base of `Store` and its mixins: one lock serialises statements so transactions
    never mix."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: all of it commits, or none of it does."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _all(self, sql: str, *args: object) -> list[tuple]:
        """Run a read query and return every row."""
        async with self._lock:
            return list(await (await self._db.execute(sql, args)).fetchall())
