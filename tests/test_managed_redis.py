"""A managed Redis, as a cloud offers it: TLS only, an ACL user with a password, reached with
`rediss://user:password@host:port/0?ssl_ca_certs=…`. The web app and a real arq worker run an
export through it; a plain connection or a wrong password is refused by the server itself."""
from __future__ import annotations

import datetime
import io
import ipaddress

import pyarrow.csv as pacsv
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.app import create_app
from domain.redis_server import RedisServer, free_port
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import create, download, export_id, poll

USER, PASSWORD = "exportd", "s3cret-pass"


def _certificates(directory) -> tuple[str, str, str]:
    """A CA, and a server certificate for 127.0.0.1 that it signed: their PEM files' paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exportd test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


class TLSRedis(RedisServer):
    """A redis-server answering only TLS on `tls_port`, to the ACL user alone."""

    def __init__(self, directory, ca: str, cert: str, key: str):
        self.tls_port = free_port()
        super().__init__(directory, args=(
            "--tls-port", str(self.tls_port), "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
            "--tls-auth-clients", "no", "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all",
            "--user", "default", "off", "--port", "0"))  # the last --port wins: no plain port at all
        self.url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{self.tls_port}/0?ssl_ca_certs={ca}"


@pytest.fixture
def managed(tmp_path):
    (tmp_path / "tls").mkdir()
    ca, cert, key = _certificates(tmp_path / "tls")
    with TLSRedis(tmp_path / "managed-redis", ca, cert, key) as server:
        yield server


async def test_an_export_through_a_tls_redis_with_a_user_and_password(managed, make_settings, start_worker, demo_file):
    settings = make_settings(redis_url=managed.url, redis_retry_seconds=1)
    await load_dataset(settings, demo_file, "demo-events")
    start_worker(settings)
    async with TestClient(TestServer(create_app(settings))) as client:
        export = export_id(await create(client, ADMIN_TOKEN, "csv"))
        ready = await poll(client, ADMIN_TOKEN, export, timeout=60)
        assert ready["status"] == "ready"
        status, body, _ = await download(client, ready["download_link"])
        assert status == 200
        table = pacsv.read_csv(io.BytesIO(body), parse_options=pacsv.ParseOptions(delimiter=";", newlines_in_values=True))
        assert table.num_rows == ready["records_count"] > 0
    # the server itself refuses what is not TLS, and a wrong password
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=managed.tls_port, username=USER, password=PASSWORD, socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(managed.url.replace(PASSWORD, "wrong"), socket_timeout=2).ping()
