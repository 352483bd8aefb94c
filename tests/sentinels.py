"""A Redis deployment on loopback for the failover tests: a primary, a replica and three
sentinels (`redis-server sentinel.conf --sentinel`), each a real process on a free port, every
one stopped on exit. The sentinels take a primary for down after DOWN_AFTER_MS without an
answer, so a failover takes a few seconds."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from domain.redis_server import RedisServer, binary, free_port, terminate

DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
QUORUM = 2


class SentinelCluster:
    def __init__(self, directory: Path, master: str, sentinels: int = 3):
        self.directory = directory
        self.master = master
        self.primary = RedisServer(directory / "primary")
        self.replica = RedisServer(directory / "replica", args=("--replicaof", "127.0.0.1", str(self.primary.port)))
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.sentinels: list[subprocess.Popen] = []

    @property
    def addresses(self) -> str:
        """EXPORTD_REDIS_SENTINELS for this cluster."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self, timeout: float = 30) -> "SentinelCluster":
        self.primary.start()
        self.replica.start()
        wait(lambda: info(self.replica.port).get("master_link_status") == "up", timeout, "the replica to sync")
        for n, port in enumerate(self.sentinel_ports):
            home = self.directory / f"sentinel-{n}"
            home.mkdir(parents=True, exist_ok=True)
            conf = home / "sentinel.conf"  # sentinels rewrite their configuration: a file of their own each
            conf.write_text(f"""port {port}
bind 127.0.0.1
daemonize no
dir {home}
sentinel monitor {self.master} 127.0.0.1 {self.primary.port} {QUORUM}
sentinel down-after-milliseconds {self.master} {DOWN_AFTER_MS}
sentinel failover-timeout {self.master} {FAILOVER_TIMEOUT_MS}
sentinel parallel-syncs {self.master} 1
""")
            with open(home / "sentinel.log", "ab") as log:
                self.sentinels.append(subprocess.Popen([binary(), str(conf), "--sentinel"], stdout=log,
                                                       stderr=subprocess.STDOUT))
        # every sentinel knows the replica and its two peers (they meet over the primary's hello
        # channel, every 2 s): only then can they agree on a failover
        wait(lambda: all(self._knows_everyone(port) for port in self.sentinel_ports), timeout,
             "the sentinels to find each other and the replica")
        return self

    def _knows_everyone(self, port: int) -> bool:
        state = sentinel_call(port, "sentinel_master", self.master)
        return bool(state) and state["num-other-sentinels"] == len(self.sentinel_ports) - 1 and state["num-slaves"] >= 1

    def primary_port(self) -> int | None:
        """The primary's port, as a majority of the sentinels name it."""
        named = [sentinel_call(port, "sentinel_get_master_addr_by_name", self.master) for port in self.sentinel_ports]
        ports = [int(address[1]) for address in named if address]
        best = max(set(ports), key=ports.count) if ports else None
        return best if best is not None and ports.count(best) >= QUORUM else None

    def stop(self) -> None:
        for process in self.sentinels:
            terminate(process)
        self.replica.stop()
        self.primary.stop()

    def __enter__(self) -> "SentinelCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def info(port: int) -> dict:
    client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1)
    try:
        return client.info("replication")
    except (redis.ConnectionError, redis.TimeoutError):
        return {}
    finally:
        client.close()


def sentinel_call(port: int, method: str, *args):
    client = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1, decode_responses=True)
    try:
        return getattr(client, method)(*args)
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        return None
    finally:
        client.close()


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
