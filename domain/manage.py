"""The server-side commands (`exportd-admin`, or `python -m domain.manage`), for the machine the
service runs on; everything a user or operator does over HTTP is the `exportd` command line's
(api/cli: exports, datasets, users).

    init [--force] [--small]  create the secrets if missing and load the demo datasets
    run [--small]             Redis (if none answers), the demo datasets, then the web process and
                              a worker under supervisord, in the foreground; exports of more than
                              DEMO_APPROVAL_ROWS records wait for approval unless
                              EXPORTD_APPROVAL_ROWS says otherwise
    --small                   only demo-events, not the 1.5M readings of demo-air-quality

`load` is also what tools on the same machine (bench/faults.py) call to put a file in place
as a dataset before any web process runs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from domain import demo, demo_air, queue
from domain.datasets import DatasetRepo, import_file
from domain.errors import DomainError, NotFound
from domain.settings import PREFIX, Settings
from domain.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent
DEMOS = (demo, demo_air)  # modules with DATASET_ID, TITLE, DESCRIPTION and table(): what `init` and `run` load
# under `run`: exporting demo-air-quality whole waits for an administrator, a filtered part does not
DEMO_APPROVAL_ROWS = 1_000_000


async def load(settings: Settings, source: Path, dataset_id: str, title: str = "", description: str = "") -> None:
    storage = await asyncio.to_thread(open_storage, settings)
    try:
        dataset = await asyncio.to_thread(import_file, source, dataset_id, storage, title, description)
    finally:
        storage.close()
    state = queue.connect(settings)
    try:
        repo = DatasetRepo(state)
        try:
            dataset.dataset_uid = (await repo.get(dataset_id)).dataset_uid  # a uid is fixed for life
        except NotFound:
            pass
        await repo.save(dataset)
    finally:
        await state.aclose()
    print(f"dataset {dataset.dataset_id} ({dataset.dataset_uid}): {dataset.records_count} records, version {dataset.version}")


async def load_demo(settings: Settings, force: bool = False, small: bool = False) -> None:
    """Every dataset of DEMOS (only the first if `small`), unless it is loaded already (so that
    `make run` twice loads once)."""
    for module in DEMOS[:1] if small else DEMOS:
        await _load_one_demo(settings, module, force)


async def _load_one_demo(settings: Settings, module, force: bool) -> None:
    state = queue.connect(settings)
    try:
        try:
            existing = await DatasetRepo(state).get(module.DATASET_ID)
            if not force and await asyncio.to_thread(_stored, settings, existing.data_key):
                print(f"dataset {module.DATASET_ID}: already loaded ({existing.records_count} records)")
                return
        except NotFound:
            pass
    finally:
        await state.aclose()
    print(f"dataset {module.DATASET_ID}: generating it", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{module.DATASET_ID}.parquet"
        await asyncio.to_thread(_write_demo, module, path)
        await load(settings, path, module.DATASET_ID, module.TITLE, module.DESCRIPTION)


def _write_demo(module, path: Path) -> None:
    pq.write_table(module.table(), path)


def _stored(settings: Settings, key: str) -> bool:
    storage = open_storage(settings)
    try:
        return storage.exists(key)
    finally:
        storage.close()


def run(settings: Settings, small: bool = False) -> int:
    """Redis (unless one answers at EXPORTD_REDIS_URL), then the Procfile's web and worker under
    supervisord (domain/supervise.py), which restarts either when it dies; Ctrl-C or SIGTERM
    stops them all, Redis last."""
    from domain import redis_server, supervise

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env[PREFIX + "DATA_DIR"] = str(settings.data_dir)
    server = supervisor = None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not settings.redis_sentinels and not redis_server.answers(settings.redis_url):  # sentinels: Redis is theirs
            if not redis_server.is_local(settings.redis_url):
                print(f"no Redis answers at {settings.redis_url}", file=sys.stderr)
                return 1
            server = redis_server.RedisServer(settings.data_dir / "redis", redis_server.port_of(settings.redis_url))
            server.start(own_session=True)
            print(f"redis-server started on port {server.port}, append-only files in {server.directory}")
        asyncio.run(load_demo(settings, small=small))
        supervisor = supervise.start(settings, env)
        _banner(settings)
        return supervise.wait(supervisor)
    except KeyboardInterrupt:
        return 0
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stopping short
            signal.signal(stop_signal, signal.SIG_IGN)
        if supervisor is not None:
            supervise.stop(supervisor, settings)
        if server is not None:
            server.stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _banner(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    print(f"""
exportd on {base}  (OpenAPI: {base}/api/openapi.json, health: {base}/health)
administrator token: {settings.admin_token}  (kept in {settings.data_dir / 'admin_token'} unless {PREFIX}ADMIN_TOKEN is set)
web and worker run under supervisord, which restarts either if it dies (its log: {settings.data_dir / 'supervisor'})

The web page: open {base}/ and sign in with the token. The command line:

  export EXPORTD_URL={base} EXPORTD_TOKEN={settings.admin_token}
  .venv/bin/exportd export {demo.DATASET_ID} --format csv --where "category = 'music'" -o music.csv

Or over HTTP: ask for an export of the demo dataset as CSV, poll it, then download it:

  curl -s -X POST {base}/api/v1/exports -H 'OSDI-API-Token: {settings.admin_token}' \\
    -H 'Content-Type: application/json' \\
    -d '{{"export_type": "csv", "name": "demo", "_links": {{"osdi:resource": {{"href": "{base}/api/v2/catalog/datasets/{demo.DATASET_ID}"}}}}}}'
  curl -s {base}/api/v1/exports/EXPORT_ID -H 'OSDI-API-Token: {settings.admin_token}'   # until "status": "ready"
  curl -o demo-events.csv "DOWNLOAD_LINK"
""", flush=True)
    if settings.approval_rows is not None:
        print(_large_demo_tour(settings, base), flush=True)


def _large_demo_tour(settings: Settings, base: str) -> str:
    """What the large demo dataset shows: progress, ?wait=, approval, a shared file."""
    return f"""{demo_air.DATASET_ID} ({demo_air.ROWS:,} readings) takes a while to export, so you can watch it:

  .venv/bin/exportd export {demo_air.DATASET_ID} --format csv --where "pollutant = 'NO2'" -o no2.csv   # a progress bar
  .venv/bin/exportd export {demo_air.DATASET_ID} --format csv --where "pollutant = 'NO2'" -o again.csv # ready at once: the same file, shared
  curl -s "{base}/api/v1/exports/EXPORT_ID?wait=20" -H 'OSDI-API-Token: …'   # answers when the status changes

A user's export (or a visitor's, without a token) of more than {settings.approval_rows:,} records, such as the whole
of {demo_air.DATASET_ID}, waits for an administrator's approval ({PREFIX}APPROVAL_ROWS; administrators' own exports
do not wait). Try it as a user, then approve it on the page's approval queue, signed in as the administrator:

  .venv/bin/exportd users add alice      # prints alice's token
  EXPORTD_TOKEN=ALICES_TOKEN .venv/bin/exportd export {demo_air.DATASET_ID} --format csv -o air.csv   # waits, then runs
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exportd-admin", description="exportd's server-side commands; users, "
                                     "datasets and exports are the `exportd` command line's, over HTTP")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create secrets if missing and load the demo datasets")
    init.add_argument("--force", action="store_true", help="reload the demo datasets")
    run_ = sub.add_parser("run", help="run Redis, the web process and a worker in the foreground")
    for command in (init, run_):
        command.add_argument("--small", action="store_true", help=f"load only {demo.DATASET_ID}, not the "
                             f"{demo_air.ROWS:,} records of {demo_air.DATASET_ID}")
    args = parser.parse_args(argv)

    if args.command == "run":  # the web process and the worker read it from the environment too
        os.environ.setdefault(PREFIX + "APPROVAL_ROWS", str(DEMO_APPROVAL_ROWS))
    settings = Settings.from_env()
    try:
        if args.command == "init":
            asyncio.run(load_demo(settings, force=args.force, small=args.small))
        elif args.command == "run":
            return run(settings, small=args.small)
    except DomainError as exc:
        print(f"exportd-admin: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
