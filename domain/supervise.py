"""`make run`'s processes under supervisord (the `supervisor` package): the Procfile's web and
worker, each restarted when it dies — at once after a crash of a process that had run a while,
with a growing delay (1 s, 2 s, 3 s, …) while it keeps failing to start — and never taking the
others down with it. Redis is started before them and stopped after them, in a session of its
own, so that Ctrl-C reaches only this runner, which stops the processes in order: worker and
web (given the worker's shutdown grace), then Redis.

The configuration is written at each run into the data directory (supervisord.conf), from the
Procfile and the settings; supervisord's own log and socket are there too."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from domain.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 3  # a process that ends sooner has failed to start, and is retried after a growing delay
START_RETRIES = 100


def programs() -> dict[str, str]:
    """The Procfile's processes: name → command."""
    from honcho.environ import parse_procfile

    return dict(parse_procfile((ROOT / "Procfile").read_text()).processes)


def config(settings: Settings, directory: Path) -> str:
    """supervisord.conf for this run: the Procfile's processes, their output on this terminal."""
    sections = [
        f"""[supervisord]
nodaemon=true
logfile={directory / 'supervisord.log'}
logfile_maxbytes=10MB
pidfile={directory / 'supervisord.pid'}
childlogdir={directory}
silent=true

[unix_http_server]
file={directory / 'supervisor.sock'}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{directory / 'supervisor.sock'}
"""]
    for name, command in programs().items():
        grace = settings.shutdown_grace + 10 if name == "worker" else 10
        copies = settings.web_processes if name == "web" else 1  # they share the port (SO_REUSEPORT)
        sections.append(f"""[program:{name}]
command={command}
numprocs={copies}
process_name=%(program_name)s{'-%(process_num)d' if copies > 1 else ''}
directory={ROOT}
autorestart=true
startsecs={START_SECONDS}
startretries={START_RETRIES}
stopsignal=TERM
stopwaitsecs={grace}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=/dev/fd/1
stdout_logfile_maxbytes=0
""")
    return "\n".join(sections)


def start(settings: Settings, env: dict[str, str]) -> subprocess.Popen:
    """supervisord in the foreground of a session of its own, its configuration written first."""
    directory = settings.data_dir / "supervisor"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "supervisord.conf"
    path.write_text(config(settings, directory))
    return subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(path)], env=env,
                            start_new_session=True)


def stop(process: subprocess.Popen, settings: Settings) -> int:
    """SIGTERM to supervisord, which stops its programs (the worker within its grace); SIGKILL
    to its whole session if it is still there long after."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(settings.shutdown_grace + 30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def wait(process: subprocess.Popen) -> int:
    """Until supervisord ends (it does on its own only if it cannot run at all)."""
    while process.poll() is None:
        time.sleep(0.5)
    return process.returncode
