"""HTTPS to Graph and the identity platform with one TLS context per session.

requests checks its CA bundle path on disk for every request (``cert_verify``:
``os.path.exists`` and ``os.path.isdir``; with ``verify`` a path, another
``isdir`` when it picks the connection pool) and hands the path to urllib3,
which loads the bundle into a context for every new connection. In a tenant
backup every item is a request: those stat calls were 4.8% of a large
tenant's samples (docs/performance.md), each one also giving the GIL away.
:class:`TlsAdapter` builds the context once, from the CA file given or
certifi's bundle (what requests trusts by default), and its connections
verify against it alone.

Verification is not weakened: the context is ``ssl.create_default_context``
(certificates required, host names checked, TLS 1.2 at least), and
tests/sources/m365/test_tls.py refuses a certificate of another CA, one for
another host name, and the simulator's own CA when it was not given.
"""

from __future__ import annotations

import ssl
from typing import Any

import certifi
from requests.adapters import HTTPAdapter

from sources.m365.graph.errors import M365ConfigError


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` only, or certifi's bundle.
    Raises M365ConfigError when the file cannot be read as CAs."""
    try:
        context = ssl.create_default_context(cafile=ca_file or certifi.where())
    except OSError as exc:  # ssl.SSLError too: not PEM certificates
        reason = exc.strerror or str(exc)
        raise M365ConfigError(f"cannot use the CA file {ca_file}: {reason}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class TlsAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections all verify with one context.

    The session using it must keep ``verify`` True (the default): a path or
    False there would go through requests' own per-request handling, which
    this adapter leaves as it is. Thread-safe as HTTPAdapter is.
    """

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self.context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **pool_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if verify is True and cert is None:
            # The context holds the CAs and requires a valid certificate for
            # the host: nothing to look up on disk, no bundle to load again.
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = None
            conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
