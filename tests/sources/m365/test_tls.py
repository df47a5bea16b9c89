"""Graph sessions verify TLS against one context (sources/m365/graph/tls.py):
a certificate from another CA, one for another host name and the
simulator's CA when it was not given are all refused; a CA file that is
not one is a one-line configuration error. Real TLS servers on loopback."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sources.m365.graph.client import make_http_session
from sources.m365.graph.errors import M365ConfigError
from sources.m365.graph.tls import TlsAdapter
from tools.graphsim.testing import running_tenant


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@contextmanager
def _server(tmp_path: Path, names: list[x509.GeneralName]) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``names`` from a
    new CA; yields its URL and the CA's file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("server", key, (ca.subject, ca_key), names)
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    (tmp_path / "server.pem").write_bytes(
        _pem(cert)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", tmp_path / "ca.pem"
    finally:
        server.shutdown()
        server.server_close()


LOOPBACK: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]


def test_the_ca_given_is_trusted_and_reused(tmp_path: Path) -> None:
    with _server(tmp_path, LOOPBACK) as (url, ca_file):
        http = make_http_session(str(ca_file))
        assert http.verify is True  # the adapter's context verifies, not a path
        adapter = http.get_adapter(url)
        assert isinstance(adapter, TlsAdapter)
        assert adapter.context.verify_mode == ssl.CERT_REQUIRED
        assert adapter.context.check_hostname
        for _ in range(3):
            assert http.get(url, timeout=10).text == "ok"


def test_a_certificate_of_another_ca_is_refused(tmp_path: Path) -> None:
    with (
        _server(tmp_path / "one", LOOPBACK) as (url, _ca),
        _server(tmp_path / "two", LOOPBACK) as (_url, other_ca),
    ):
        http = make_http_session(str(other_ca))
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(url, timeout=10)


def test_a_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    with _server(tmp_path, [x509.DNSName("elsewhere.example")]) as (url, ca_file):
        http = make_http_session(str(ca_file))
        with pytest.raises(requests.exceptions.SSLError, match="IP address mismatch"):
            http.get(url, timeout=10)


@pytest.mark.sim
def test_without_its_ca_the_simulator_is_refused(tmp_path: Path) -> None:
    """No CA file: certifi's public CAs, which never signed the simulator's."""
    with running_tenant(tmp_path / "sim", seed=3, throttling=False) as tenant:
        assert tenant.info is not None
        url = f"{tenant.info.graph_url}/users"
        assert make_http_session(str(tenant.info.ca_file)).get(url, timeout=10).status_code == 401
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            make_http_session(None).get(url, timeout=10)


@pytest.mark.parametrize("content", [None, b"", b"not a certificate\n"])
def test_a_ca_file_that_is_not_one_is_a_configuration_error(
    tmp_path: Path, content: bytes | None
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_bytes(content)
    with pytest.raises(M365ConfigError, match=r"^cannot use the CA file .*ca\.pem: ") as caught:
        make_http_session(str(ca_file))
    assert "\n" not in str(caught.value)
