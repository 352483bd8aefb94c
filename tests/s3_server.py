"""moto's standalone S3 server (from PyPI, `moto[server]`) for the tests: a real
S3-compatible HTTP server in a child process on a free 127.0.0.1 port, which the service
reaches with boto3 exactly as it would reach AWS S3 or MinIO."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

from domain.redis_server import free_port, terminate

CREDENTIALS = {  # moto accepts any; boto3 refuses to sign without
    "AWS_ACCESS_KEY_ID": "exportd-test", "AWS_SECRET_ACCESS_KEY": "exportd-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    """`with S3Server(dir) as server:` a running server at server.url, stopped on exit;
    server.client is a boto3 client of it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "S3Server":
        log = open(self.directory / "moto.log", "ab")
        self.process = subprocess.Popen([Path(sys.executable).parent / "moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"moto_server did not start on port {self.port}; see {self.directory / 'moto.log'}")
            time.sleep(0.1)
        self.client = boto3.session.Session().client("s3", endpoint_url=self.url)
        return self

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url, timeout=1).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        if self.process is not None:
            terminate(self.process)
