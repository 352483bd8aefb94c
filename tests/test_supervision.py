"""`make run`'s supervision, as a person would try it: the real `python -m domain.manage run`
(Redis, then web and worker under supervisord) on free ports in a temporary directory. A web
process killed with SIGSEGV or SIGKILL and a worker killed with SIGKILL each come back with a
new pid, while Redis and the other keep theirs; Ctrl-C (SIGINT) then stops everything it
started, Redis last, and leaves no process behind. Restart times are printed."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import pytest

from domain.redis_server import free_port
from tests.processes import alive, descendants

ROOT = Path(__file__).resolve().parent.parent


class Run:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "var"
        self.port, self.redis_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "EXPORTD_DATA_DIR": str(self.data), "EXPORTD_PORT": str(self.port),
               "EXPORTD_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", "EXPORTD_SHUTDOWN_GRACE": "5",
               "PYTHONPATH": str(ROOT)}
        self.log = open(tmp / "run.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "domain.manage", "run", "--small"], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def pids(self) -> dict[str, int]:
        """The running programs' pids, as supervisorctl tells them."""
        conf = self.data / "supervisor" / "supervisord.conf"
        out = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), "status"],
                             capture_output=True, text=True).stdout
        return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+RUNNING\s+pid (\d+)", out, re.M)}

    def redis_pid(self) -> int:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"redis-server" in cmdline and str(self.redis_port).encode() in cmdline:
                    return int(entry)
        raise AssertionError("no redis-server")

    def until(self, check, timeout: float = 60) -> float:
        """Seconds until check() is true."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process.poll() is None, (self.data.parent / "run.log").read_text()[-3000:]
            try:
                if check():
                    return time.monotonic() - started
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"not within {timeout} s: {(self.data.parent / 'run.log').read_text()[-3000:]}")

    def healthy(self) -> bool:
        return requests.get(f"{self.base}/health", timeout=2).status_code == 200

    def serves(self) -> bool:
        return requests.get(f"{self.base}/api/v2/catalog/datasets/demo-events/records?limit=1", timeout=2).status_code == 200


@pytest.fixture
def run(tmp_path):
    started = Run(tmp_path)
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.wait()
    started.log.close()


def test_make_run_restarts_what_dies_and_stops_everything(run):
    run.until(run.healthy)  # a worker's heartbeat too
    run.until(lambda: set(run.pids()) == {"web", "worker"})  # past supervisord's start seconds
    redis = run.redis_pid()
    figures = {}
    for name, sig in (("web", signal.SIGSEGV), ("web", signal.SIGKILL), ("worker", signal.SIGKILL)):
        before = run.pids()
        os.kill(before[name], sig)
        other = "worker" if name == "web" else "web"
        figures[f"{name} after {sig.name}"] = run.until(
            lambda: run.pids().get(name, before[name]) != before[name] and (run.serves() if name == "web" else run.healthy()))
        after = run.pids()
        assert after[other] == before[other], "the other process was restarted too"
        assert run.redis_pid() == redis, "Redis was restarted"
    print("\nrestarted and serving again: " + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items()))

    everything = descendants(run.process.pid)  # supervisord, Redis, web (its query processes), worker
    assert redis in everything and len(everything) >= 4
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(60) == 0
    time.sleep(0.5)
    assert [pid for pid in everything if alive(pid)] == []
