"""Command line: `python -m tools.graphsim serve|inventory ...`.

    serve --state-dir DIR [--users N] [--seed S] [--port P] [--scale small|medium|large]
          [--host 127.0.0.1] [--throttle-scale F | --no-throttling]
          [--token-lifetime SECONDS] [--device-code-interval SECONDS]
          [--protected-api-refused] [--profile healthy|realistic] [--behaviour NAME ...]
          [--latency MS] [--lazy]
        Generates the tenant on first use (reused afterwards), serves HTTPS, writes
        DIR/connection.json and DIR/coffer.toml, prints one line with the URLs, and runs
        until SIGTERM or SIGINT (exit 0).

    inventory --state-dir DIR
        Prints the inventory of an existing tenant as JSON (no server).

    churn --state-dir DIR --percent P [--seed S] [--kinds message,driveItem,...] [--json]
        Users change P% of the items and folders (create, edit, move, rename, delete),
        through the running server's admin API, or directly when no server runs. Prints a
        summary (or every change with --json).

Exit codes: 0 ok, 1 error, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType

import requests

from .behaviours import BEHAVIOURS, PROFILES
from .config import SCALES, IdentitySettings, ThrottlePolicy
from .content import ContentStore
from .inventory import inventory
from .mutations import churn
from .simulator import DOMAIN, SHAREPOINT_HOST, Simulator, SimulatorError
from .statetokens import StateTokens
from .store import Store
from .tenant import Tenant


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.graphsim", description="Microsoft 365 simulator"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="generate (once) and serve a simulated tenant")
    serve.add_argument("--state-dir", required=True)
    serve.add_argument(
        "--users", type=int, default=None, help="licensed users (default: per scale)"
    )
    serve.add_argument("--seed", type=int, default=None, help="generator seed (default 0)")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--scale", choices=sorted(SCALES), default=None)
    group = serve.add_mutually_exclusive_group()
    group.add_argument(
        "--throttle-scale",
        type=float,
        default=1.0,
        help="multiply every rate limit's budget and window (e.g. 0.01 for fast tests)",
    )
    group.add_argument(
        "--no-throttling",
        action="store_true",
        help="rate limits off (4 per mailbox still enforced)",
    )
    serve.add_argument("--token-lifetime", type=int, default=3599)
    serve.add_argument("--device-code-interval", type=int, default=5)
    serve.add_argument(
        "--protected-api-refused", action="store_true", help="channel messages answer 403"
    )
    serve.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="realistic: every Microsoft 365 behaviour that breaks backups (docs/simulator.md)",
    )
    serve.add_argument(
        "--behaviour",
        action="append",
        choices=BEHAVIOURS,
        default=[],
        help="turn one behaviour on (repeatable)",
    )
    serve.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="MS",
        help="wait this many milliseconds before answering each request (a WAN stand-in)",
    )
    serve.add_argument(
        "--lazy",
        action="store_true",
        help="generate each user's content on first access (large tenants start in seconds)",
    )
    inv = sub.add_parser("inventory", help="print the inventory of a tenant")
    inv.add_argument("--state-dir", required=True)
    ch = sub.add_parser("churn", help="change a share of the tenant like users do")
    ch.add_argument("--state-dir", required=True)
    ch.add_argument("--percent", type=float, required=True)
    ch.add_argument("--seed", type=int, default=0)
    ch.add_argument("--kinds", default="", help="comma-separated, default all")
    ch.add_argument("--json", action="store_true", help="print every change")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inventory":
        return _inventory(args.state_dir)
    if args.command == "churn":
        return _churn(args)
    policy = ThrottlePolicy(enabled=not args.no_throttling, scale=args.throttle_scale)
    sim = Simulator(
        args.state_dir,
        users=args.users,
        seed=args.seed,
        scale=args.scale,
        throttling=policy,
        port=args.port,
        host=args.host,
        token_lifetime=args.token_lifetime,
        device_code_interval=args.device_code_interval,
        protected_api_approved=not args.protected_api_refused,
        profile=args.profile,
        behaviours=tuple(args.behaviour),
        latency_ms=args.latency,
        lazy=args.lazy,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = sim.start()
    except SimulatorError as exc:
        print(f"graphsim: {exc}", file=sys.stderr)
        return 1
    generated = f" (generated in {sim.generation_seconds:.1f}s)" if sim.generation_seconds else ""
    print(
        f"graphsim: serving {info.graph_url} authority {info.authority} admin {info.admin_url}"
        f" state {info.state_dir}{generated}",
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


def _offline_tenant(state_dir: str) -> Tenant | None:
    path = Path(state_dir) / "tenant.db"
    if not path.exists():
        return None
    store = Store(path)
    return Tenant(
        store=store,
        content=ContentStore(Path(state_dir) / "blobs", store),
        tokens=StateTokens(bytes.fromhex(str(store.get_meta("token_secret")))),
        tenant_id=str(store.get_meta("tenant_id")),
        domain=DOMAIN,
        sharepoint_host=SHAREPOINT_HOST,
        settings=IdentitySettings(),
    )


def _churn(args: argparse.Namespace) -> int:
    kinds = [k for k in args.kinds.split(",") if k] or None
    body = {"percent": args.percent, "seed": args.seed, "kinds": kinds}
    conn_file = Path(args.state_dir) / "connection.json"
    changes: list[dict[str, object]] | None = None
    if conn_file.exists():
        conn = json.loads(conn_file.read_text())
        session = requests.Session()
        session.trust_env = False
        session.verify = str(Path(args.state_dir) / conn["ca_file"])
        try:
            resp = session.post(f"{conn['admin_url']}/churn", json=body, timeout=600)
            resp.raise_for_status()
            changes = resp.json()["changes"]
        except requests.ConnectionError:
            changes = None  # no server: change the stored tenant directly
    if changes is None:
        tenant = _offline_tenant(args.state_dir)
        if tenant is None:
            print(f"graphsim: no tenant in {args.state_dir}", file=sys.stderr)
            return 1
        try:
            changes = churn(tenant, args.percent, args.seed, kinds)
        finally:
            tenant.store.close()
    if args.json:
        json.dump(changes, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        summary = Counter(f"{c['op']} {c['kind']}" for c in changes)
        print(
            f"graphsim: {len(changes)} changes: "
            + ", ".join(f"{n} {k}" for k, n in sorted(summary.items()))
        )
    return 0


def _inventory(state_dir: str) -> int:
    tenant = _offline_tenant(state_dir)
    if tenant is None:
        print(f"graphsim: no tenant in {state_dir}", file=sys.stderr)
        return 1
    try:
        json.dump(inventory(tenant), sys.stdout, indent=2, ensure_ascii=False)
        print()
    finally:
        tenant.store.close()
    return 0
