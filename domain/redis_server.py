"""A local redis-server for the dev runner and the tests: append-only persistence, files in a
directory of ours, started as a child process and stopped with it."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def answers(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError("redis-server is not installed: `make run` or `make test` installs it (apt-get install redis-server)")
    return found


def command(port: int, directory: Path) -> list[str]:
    return [
        binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
    ]


class RedisServer:
    """`with RedisServer(dir) as server:` a running server at server.url, stopped on exit."""

    def __init__(self, directory: Path, port: int | None = None, args: tuple[str, ...] = ()):
        self.directory = directory
        self.port = port or free_port()
        self.args = args  # more of redis-server's options (--replicaof HOST PORT)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0, own_session: bool = False) -> "RedisServer":
        """Started and answering; in a session of its own if asked, so that a terminal's Ctrl-C
        does not reach it and whoever started it stops it last."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen([*command(self.port, self.directory), *self.args], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=own_session)
        log.close()
        deadline = time.monotonic() + timeout
        while not answers(self.url):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.directory / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def is_local(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOCAL_HOSTS


def port_of(url: str) -> int:
    return urlparse(url).port or 6379


def terminate(process: subprocess.Popen, grace: float = 10) -> None:
    """Stop a server process: SIGTERM, then SIGKILL if it is still there after `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
