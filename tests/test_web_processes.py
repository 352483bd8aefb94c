"""EXPORTD_WEB_PROCESSES: several `python -m api` on one port (SO_REUSEPORT), as `make run` and
the systemd template start them. The kernel spreads new connections between them; one killed,
the others go on answering; without the setting a second process cannot take the port, so a
stale one from another run never serves silently beside the new."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from domain import supervise
from domain.redis_server import free_port
from tests.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def start_web(tmp_path: Path, redis_url: str, port: int, processes: int, n: int) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"web-{n}.log"
    env = {**os.environ, "EXPORTD_DATA_DIR": str(tmp_path / "data"), "EXPORTD_REDIS_URL": redis_url,
           "EXPORTD_PORT": str(port), "EXPORTD_SECRET_KEY": "s", "EXPORTD_ADMIN_TOKEN": ADMIN_TOKEN,
           "EXPORTD_WEB_PROCESSES": str(processes), "EXPORTD_EXPLORE_RATE_LIMIT": "0"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, log


def answering(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("the web process did not answer")


def served(log: Path) -> int:
    return log.read_text().count('"GET /api/v2/catalog/datasets')


def test_web_processes_share_the_port_and_outlive_each_other(tmp_path, redis_server):
    port = free_port()
    webs = [start_web(tmp_path, redis_server.url, port, 2, n) for n in range(2)]
    try:
        answering(port)
        time.sleep(1)  # both listening
        assert all(process.poll() is None for process, _ in webs), [log.read_text()[-2000:] for _, log in webs]
        for _ in range(200):  # a new connection each: the kernel picks a process for each
            with requests.Session() as session:
                assert session.get(f"http://127.0.0.1:{port}/api/v2/catalog/datasets", timeout=5).status_code == 200
        counts = [served(log) for _, log in webs]
        assert sum(counts) == 200 and min(counts) > 0, counts

        webs[0][0].send_signal(signal.SIGKILL)
        webs[0][0].wait(10)
        statuses = [requests.get(f"http://127.0.0.1:{port}/api/v2/catalog/datasets", timeout=5).status_code
                    for _ in range(20)]
        assert statuses == [200] * 20
    finally:
        for process, _ in webs:
            process.kill()
            process.wait(10)


def test_without_the_setting_a_second_process_cannot_take_the_port(tmp_path, redis_server):
    port = free_port()
    first, _ = start_web(tmp_path, redis_server.url, port, 1, 0)
    try:
        answering(port)
        second, log = start_web(tmp_path, redis_server.url, port, 1, 1)
        assert second.wait(30) != 0 and "address already in use" in log.read_text().lower()
    finally:
        first.kill()
        first.wait(10)


def test_make_run_starts_as_many_web_processes(make_settings, tmp_path):
    conf = supervise.config(make_settings(web_processes=3), tmp_path)
    web = conf.split("[program:web]")[1].split("[program:")[0]
    assert "numprocs=3" in web and "process_name=%(program_name)s-%(process_num)d" in web
    worker = conf.split("[program:worker]")[1]
    assert "numprocs=1" in worker and "process_name=%(program_name)s\n" in worker
