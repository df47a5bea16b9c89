"""`Simulator`: one simulated Microsoft 365 tenant served over HTTPS, in-process.

    with Simulator(tmp_path, seed=7, scale="small", throttling=0.01) as sim:
        info = sim.info            # ConnectionInfo (also written to DIR/connection.json)
        ...

Contracts:
- The tenant lives in `state_dir` (SQLite, certificates, keys, uploaded blobs). A new
  directory is generated from (seed, scale, users); an existing one is reused as is, and
  asking for a different seed, scale or user count raises `SimulatorError`.
- `start()` returns once the server accepts connections and `connection.json` and
  `coffer.toml` are written (atomically; secrets 0600). `stop()` is idempotent.
- Thread-safe: the server handles many connections; the Python API can be used from the
  test's thread while requests run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .admin import AdminApi
from .app import GraphApp
from .behaviours import Behaviours, apply_profile
from .certs import ensure_certificates, load_certificate, sha1_thumbprint_hex
from .config import SCALES, IdentitySettings, ThrottlePolicy, throttle_policy
from .content import ContentStore
from .faults import Faults
from .files import write_connection_files
from .generator import generate_tenant, lazy_plan
from .generator.base import Gen
from .identity import IdentityPlatform, UserLookup
from .lazyusers import LazyUsers
from .router import Router
from .server import HttpsServer
from .services import (
    batch,
    calendar,
    contacts,
    drive,
    groups,
    mail,
    sites,
    teams,
    uploads,
    users,
)
from .statetokens import StateTokens
from .stats import Stats
from .store import Store
from .tenant import Tenant
from .throttling import Throttler

DOMAIN = "contoso.onmicrosoft.com"
SHAREPOINT_HOST = "contoso.sharepoint.com"


class SimulatorError(Exception):
    """The state directory cannot be used as asked (one line, for the CLI)."""


@dataclass(frozen=True)
class ConnectionInfo:
    """How to reach the simulated tenant. Paths are absolute."""

    authority: str
    tenant_id: str
    graph_url: str
    client_id: str
    client_secret: str
    certificate: Path
    private_key: Path
    thumbprint: str
    ca_file: Path
    admin_url: str
    state_dir: Path
    port: int

    def as_json(self) -> dict[str, Any]:
        """connection.json's content: paths relative to the state directory."""
        return {
            "authority": self.authority,
            "tenant_id": self.tenant_id,
            "graph_url": self.graph_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "certificate": self.certificate.name,
            "private_key": self.private_key.name,
            "thumbprint": self.thumbprint,
            "ca_file": self.ca_file.name,
            "admin_url": self.admin_url,
        }


class Simulator:
    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        users: int | None = None,
        seed: int | None = None,
        scale: str | None = None,
        throttling: bool | float | ThrottlePolicy | None = True,
        port: int = 0,
        host: str = "127.0.0.1",
        token_lifetime: int = 3599,
        device_code_interval: int = 5,
        protected_api_approved: bool = True,
        switches: dict[str, Any] | None = None,
        profile: str | None = None,
        behaviours: tuple[str, ...] = (),
        latency_ms: float = 0.0,
        lazy: bool = False,
    ) -> None:
        if scale is not None and scale not in SCALES:
            raise SimulatorError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
        self.state_dir = Path(state_dir).resolve()
        self._want_users = users
        self._want_seed = seed
        self._want_scale = scale
        self._lazy = lazy  # users' content generated on first access (lazyusers.py)
        self._policy = throttle_policy(throttling)
        self._port = port
        self._host = host
        self._settings = IdentitySettings(
            token_lifetime=token_lifetime, device_code_interval=device_code_interval
        )
        self._protected = protected_api_approved
        self._latency = max(0.0, latency_ms) / 1000
        self._switches = dict(switches or {})
        self._server: HttpsServer | None = None
        self.store: Store | None = None
        self.tenant: Tenant | None = None
        self.stats = Stats()
        self.faults = Faults()
        self.behaviours = Behaviours()
        self._profile = profile
        self._behaviours = behaviours
        self.throttler = Throttler(self._policy)
        self.identity: IdentityPlatform | None = None
        self._info: ConnectionInfo | None = None
        self.generation_seconds: float | None = None
        self._warm_stop = threading.Event()
        self._warm_thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def info(self) -> ConnectionInfo:
        if self._info is None:
            raise SimulatorError("the simulator is not running")
        return self._info

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ConnectionInfo:
        if self._info is not None:
            return self._info
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        db_path = self.state_dir / "tenant.db"
        fresh = not db_path.exists()
        store = Store(db_path)
        os.chmod(db_path, 0o600)
        self.store = store
        try:
            self._prepare(store, fresh)
            self._info = self._serve(store)
        except BaseException:
            self.stop()
            raise
        return self._info

    def _prepare(self, store: Store, fresh: bool) -> None:
        if store.get_meta("generator") is None:
            seed = 0 if self._want_seed is None else self._want_seed
            scale = self._want_scale or "small"
            gen = Gen(seed, dt.datetime.now(dt.UTC))
            with store.transaction() as tx:
                tx.set_meta("tenant_id", gen.guid("tenant"))
                tx.set_meta("client_id", gen.guid("app"))
                tx.set_meta("client_secret", secrets.token_urlsafe(32))
                tx.set_meta("token_secret", secrets.token_hex(32))
            started = time.monotonic()
            generate_tenant(
                store,
                seed=seed,
                scale=scale,
                users=self._want_users,
                domain=DOMAIN,
                sharepoint_host=SHAREPOINT_HOST,
                lazy=self._lazy,
            )
            self.generation_seconds = time.monotonic() - started
            return
        stored = {
            "seed": int(store.get_meta("seed") or 0),
            "scale": store.get_meta("scale") or "small",
            "users": int(store.get_meta("users") or 0),
        }
        wanted = {"seed": self._want_seed, "scale": self._want_scale, "users": self._want_users}
        for key, value in wanted.items():
            if value is not None and value != stored[key]:
                raise SimulatorError(
                    f"{self.state_dir} holds a tenant with {key}={stored[key]}, not {value};"
                    " use another --state-dir or drop the option"
                )
        if self._lazy and store.get_meta("lazy") != "1":
            raise SimulatorError(
                f"{self.state_dir} holds a tenant generated up front, not --lazy;"
                " use another --state-dir or drop the option"
            )

    def _serve(self, store: Store) -> ConnectionInfo:
        tenant_id = str(store.get_meta("tenant_id"))
        client_id = str(store.get_meta("client_id"))
        client_secret = str(store.get_meta("client_secret"))
        certs = ensure_certificates(self.state_dir, client_id)
        key = serialization.load_pem_private_key(certs.signing_key.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        client_cert = load_certificate(certs.client_cert)
        content = ContentStore(self.state_dir / "blobs", store)
        tenant = Tenant(
            store=store,
            content=content,
            tokens=StateTokens(bytes.fromhex(str(store.get_meta("token_secret")))),
            tenant_id=tenant_id,
            domain=DOMAIN,
            sharepoint_host=SHAREPOINT_HOST,
            settings=self._settings,
        )
        tenant.switches.protected_api_approved = self._protected
        tenant.switches.update(self._switches)
        self.tenant = tenant
        plan = lazy_plan(store, domain=DOMAIN, sharepoint_host=SHAREPOINT_HOST)
        if plan is not None:
            tenant.materialize = LazyUsers(store, plan).materialize
        self.behaviours.set(enable=list(self._behaviours))
        if self._profile:
            apply_profile(tenant, self.behaviours, self._profile)
        identity = IdentityPlatform(
            tenant_id=tenant_id,
            domain=DOMAIN,
            client_id=client_id,
            client_secret=client_secret,
            client_cert=client_cert,
            signing_key=key,
            settings=self._settings,
            users=UserLookup(find=tenant.user_dict),
        )
        self.identity = identity
        router, raw = Router(), Router()
        users.register(router, tenant)
        mail.register(router, tenant)
        contacts.register(router, tenant)
        calendar.register(router, tenant)
        drive.register(router, raw, tenant)
        sites.register(router, tenant)
        teams.register(router, tenant)
        groups.register(router, tenant)
        uploads.register(raw, tenant)
        admin = AdminApi(
            tenant=tenant,
            identity=identity,
            stats=self.stats,
            faults=self.faults,
            throttler=self.throttler,
            info=self._public_info,
            behaviours=self.behaviours,
        )
        app = GraphApp(
            tenant=tenant,
            identity=identity,
            router=router,
            raw_router=raw,
            throttler=self.throttler,
            faults=self.faults,
            stats=self.stats,
            admin=admin,
            behaviours=self.behaviours,
            latency=self._latency,
        )
        batch.register(router, app.execute)
        server = HttpsServer(
            app,
            str(certs.server_cert),
            str(certs.server_key),
            self._host,
            self._port,
            on_connection_end=store.close_thread,
        )
        server.start()
        self._server = server
        base = server.base_url
        info = ConnectionInfo(
            authority=f"{base}/{tenant_id}",
            tenant_id=tenant_id,
            graph_url=f"{base}/v1.0",
            client_id=client_id,
            client_secret=client_secret,
            certificate=certs.client_cert,
            private_key=certs.client_key,
            thumbprint=sha1_thumbprint_hex(client_cert),
            ca_file=certs.ca_file,
            admin_url=f"{base}/_sim",
            state_dir=self.state_dir,
            port=server.port,
        )
        write_connection_files(self.state_dir, info.as_json())
        if store.get_meta("scale") in ("medium", "large"):
            # Hash the files in the background so the first drive delta is not slowed by
            # hashing gigabytes (hashes are otherwise computed on first use).
            self._warm_thread = threading.Thread(
                target=self._warm_hashes, args=(store, content), name="graphsim-hashes", daemon=True
            )
            self._warm_thread.start()
        return info

    def _warm_hashes(self, store: Store, content: ContentStore) -> None:
        try:
            for item in store.iter_live(["driveItem"]):
                if self._warm_stop.is_set():
                    return
                if item.content and "file" in item.data:
                    content.hashes(item.content)
        except Exception:  # best effort: hashes are computed on demand anyway
            return
        finally:
            store.close_thread()

    def _public_info(self) -> dict[str, Any]:
        assert self.store is not None
        info = self.info.as_json()
        info.pop("client_secret", None)
        return {
            **info,
            "domain": DOMAIN,
            "sharepoint_host": SHAREPOINT_HOST,
            "seed": int(self.store.get_meta("seed") or 0),
            "scale": self.store.get_meta("scale"),
            "users": int(self.store.get_meta("users") or 0),
            "anchor": self.store.get_meta("anchor"),
            "behaviours": self.behaviours.describe(),
            "throttling": {
                "enabled": self.throttler.policy.enabled,
                "scale": self.throttler.policy.scale,
            },
        }

    def stop(self) -> None:
        """Stop serving and close the database. Idempotent."""
        self._warm_stop.set()
        if self._warm_thread is not None:
            self._warm_thread.join(timeout=30)
            self._warm_thread = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
            self.store = None
        self._info = None
