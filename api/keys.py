"""Typed application keys: what the app holds, set up by the cleanup contexts in api.app."""
from __future__ import annotations

from arq.connections import ArqRedis
from aiohttp import web
from redis.asyncio import Redis

from api.isolation.pool import QueryPool
from api.waiting import StatusWaiters
from domain.datasets import DatasetRepo
from domain.exports import ExportRepo
from domain.settings import Settings
from domain.storage import Storage
from domain.users import UserRepo

SETTINGS = web.AppKey("settings", Settings)
STATE = web.AppKey("state", Redis)
QUEUE = web.AppKey("queue", ArqRedis)
EXPORTS = web.AppKey("exports", ExportRepo)
DATASETS = web.AppKey("datasets", DatasetRepo)
USERS = web.AppKey("users", UserRepo)
WAITERS = web.AppKey("waiters", StatusWaiters)
STORAGE = web.AppKey("storage", Storage)
POOL = web.AppKey("pool", QueryPool)
