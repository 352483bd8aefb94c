"""Users and their API tokens. Tokens are random, shown once, and stored only as SHA-256
hashes; EXPORTD_ADMIN_TOKEN is the built-in administrator's token. A user may also have a
password (HTTP Basic, for the management API), stored as a salted scrypt hash and compared in
constant time."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.errors import Conflict, Invalid, NotFound, Unauthorized
from domain.timeutil import iso, now

ADMIN = "admin"
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
ANONYMOUS = "anonymous:"  # the owner name of a visitor without an account: no user's name has a colon


@dataclass(frozen=True)
class User:
    name: str
    admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.name.startswith(ANONYMOUS)


def anonymous_visitor(client: str, secret: str) -> User:
    """The visitor without an account at this client (an IP address), as an owner: keyed by a
    hash of the address, so exports and counters never hold the address itself."""
    digest = hmac.new(secret.encode(), client.encode(), hashlib.sha256).hexdigest()[:20]
    return User(ANONYMOUS + digest)


def is_anonymous(owner: str) -> bool:
    return owner.startswith(ANONYMOUS)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}  # about 16 MiB and 50 ms a check
MIN_PASSWORD = 8


def password_hash(password: str, salt: bytes | None = None, n: int = SCRYPT["n"], r: int = SCRYPT["r"], p: int = SCRYPT["p"]) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, _digest = stored.split("$")
        expected = password_hash(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode(), stored.encode())


_DUMMY = password_hash("not a password", b"\0" * 16)  # checked for unknown users: no timing on names


class UserRepo:
    def __init__(self, redis: Redis, admin_token: str):
        self.redis = redis
        self._admin_hash = token_hash(admin_token)

    async def add(self, name: str, admin: bool = False) -> User:
        if not NAME.match(name) or name == ADMIN:
            raise Invalid(f"user name {name!r} must be 1-64 letters, digits or _.@- and not {ADMIN!r}")
        record = orjson.dumps({"name": name, "admin": admin, "created": iso(now())})
        if not await self.redis.hsetnx(keys.USERS, name, record):
            raise Conflict(f"user {name!r} exists")
        return User(name, admin)

    async def get(self, name: str) -> User:
        raw = await self.redis.hget(keys.USERS, name)
        if raw is None:
            raise NotFound(f"no user {name!r}")
        data = orjson.loads(raw)
        return User(data["name"], bool(data["admin"]))

    async def list(self) -> list[User]:
        raw = await self.redis.hgetall(keys.USERS)
        return sorted((User(d["name"], bool(d["admin"])) for d in map(orjson.loads, raw.values())), key=lambda u: u.name)

    async def new_token(self, name: str) -> str:
        """A fresh token for the user, returned once; only its hash is kept."""
        await self.get(name)
        token = secrets.token_urlsafe(32)
        digest = token_hash(token)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.token(digest), name)
            pipe.sadd(keys.user_tokens(name), digest)
            await pipe.execute()
        return token

    async def set_password(self, name: str, password: str) -> None:
        await self.get(name)
        if len(password) < MIN_PASSWORD:
            raise Invalid(f"a password needs at least {MIN_PASSWORD} characters")
        await self.redis.hset(keys.PASSWORDS, name, await asyncio.to_thread(password_hash, password))

    async def authenticate_password(self, name: str, password: str) -> User:
        """The user with this name and password (HTTP Basic), else Unauthorized; the check
        costs the same whether or not the user exists."""
        stored = await self.redis.hget(keys.PASSWORDS, name)
        matches = await asyncio.to_thread(password_matches, password, stored or _DUMMY)  # CPU: off the loop
        if stored is None or not matches:
            raise Unauthorized("wrong user name or password")
        return await self.get(name)

    async def authenticate(self, token: str | None) -> User:
        if not token:
            raise Unauthorized("send your API token in the OSDI-API-Token header")
        digest = token_hash(token)
        if hmac.compare_digest(digest, self._admin_hash):
            return User(ADMIN, admin=True)
        name = await self.redis.get(keys.token(digest))  # looked up by hash: no timing on the secret
        if name is None:
            raise Unauthorized("unknown API token")
        return await self.get(name)
