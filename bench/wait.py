"""Waiting for a service the bench started to answer."""
from __future__ import annotations

import asyncio

import aiohttp

POLL = 0.1  # seconds between tries


async def answering(base: str, seconds: float = 30, what: str = "the web process") -> None:
    """Return once `base` serves its OpenAPI document; RuntimeError after `seconds`."""
    async with aiohttp.ClientSession() as session:
        for _ in range(int(seconds / POLL)):
            try:
                async with session.get(f"{base}/api/openapi.json") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(POLL)
    raise RuntimeError(f"{what} did not start")
