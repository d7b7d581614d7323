"""Slash-command groups: one extension per module, each ending with `async def setup(bot)`."""
