"""Certificates for the simulator, generated with `cryptography`.

- A self-signed CA (`ca.pem`), which clients trust through `ca_file`.
- A server certificate for 127.0.0.1, ::1 and localhost signed by that CA (`server-*.pem`).
- The application's client certificate and private key (`client-cert.pem`,
  `client-key.pem`), registered on the simulated app so certificate assertions verify.
- The identity platform's token-signing key (`signing-key.pem`).

Every function is idempotent: existing files are reused, so a restart keeps the tenant's
credentials. Private keys are written 0600 through `files.write_secret`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .files import write_public, write_secret

_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class CertPaths:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    signing_key: Path


def _new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Coffer Graph simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _make_ca(key: rsa.RSAPrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = _name("Coffer simulator CA")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server_cert(
    key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _make_client_cert(key: rsa.RSAPrivateKey, client_id: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = _name(f"app {client_id}")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .sign(key, hashes.SHA256())
    )


def ensure_certificates(state_dir: Path, client_id: str) -> CertPaths:
    """Create (once) every certificate and key the simulator needs under `state_dir`."""
    paths = CertPaths(
        ca_file=state_dir / "ca.pem",
        server_cert=state_dir / "server-cert.pem",
        server_key=state_dir / "server-key.pem",
        client_cert=state_dir / "client-cert.pem",
        client_key=state_dir / "client-key.pem",
        signing_key=state_dir / "signing-key.pem",
    )
    ca_key_path = state_dir / "ca-key.pem"
    if not (paths.ca_file.exists() and ca_key_path.exists()):
        ca_key = _new_key()
        write_secret(ca_key_path, _key_pem(ca_key))
        write_public(paths.ca_file, _make_ca(ca_key).public_bytes(serialization.Encoding.PEM))
        # A new CA invalidates any older server certificate.
        paths.server_cert.unlink(missing_ok=True)
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        ca_key = _load_key(ca_key_path)
        ca_cert = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
        key = _new_key()
        write_secret(paths.server_key, _key_pem(key))
        cert = _make_server_cert(key, ca_cert, ca_key)
        write_public(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    if not (paths.client_cert.exists() and paths.client_key.exists()):
        key = _new_key()
        write_secret(paths.client_key, _key_pem(key))
        cert = _make_client_cert(key, client_id)
        write_public(paths.client_cert, cert.public_bytes(serialization.Encoding.PEM))
    if not paths.signing_key.exists():
        write_secret(paths.signing_key, _key_pem(_new_key()))
    return paths


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sha1_thumbprint_hex(cert: x509.Certificate) -> str:
    """The certificate thumbprint as Entra ID shows it: uppercase hex SHA-1 of the DER."""
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def x5t(cert: x509.Certificate) -> str:
    """`x5t` header value: base64url SHA-1 of the DER certificate, unpadded."""
    digest = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def x5t_s256(cert: x509.Certificate) -> str:
    """`x5t#S256` header value: base64url SHA-256 of the DER certificate, unpadded."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
