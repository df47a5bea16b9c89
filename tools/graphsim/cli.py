"""Command line: `python -m tools.graphsim serve|inventory ...`.

    serve --state-dir DIR [--users N] [--seed S] [--port P] [--scale small|medium|large]
          [--host 127.0.0.1] [--throttle-scale F | --no-throttling]
          [--token-lifetime SECONDS] [--device-code-interval SECONDS]
          [--protected-api-refused]
        Generates the tenant on first use (reused afterwards), serves HTTPS, writes
        DIR/connection.json and DIR/coffer.toml, prints one line with the URLs, and runs
        until SIGTERM or SIGINT (exit 0).

    inventory --state-dir DIR
        Prints the inventory of an existing tenant as JSON (no server).

Exit codes: 0 ok, 1 error, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from .config import SCALES, ThrottlePolicy
from .simulator import Simulator, SimulatorError


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
    inv = sub.add_parser("inventory", help="print the inventory of a tenant")
    inv.add_argument("--state-dir", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inventory":
        return _inventory(args.state_dir)
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


def _inventory(state_dir: str) -> int:
    from pathlib import Path

    from .content import ContentStore
    from .inventory import inventory
    from .statetokens import StateTokens
    from .store import Store
    from .tenant import Tenant
    from .config import IdentitySettings

    path = Path(state_dir) / "tenant.db"
    if not path.exists():
        print(f"graphsim: no tenant in {state_dir}", file=sys.stderr)
        return 1
    store = Store(path)
    try:
        tenant = Tenant(
            store=store,
            content=ContentStore(Path(state_dir) / "blobs", store),
            tokens=StateTokens(bytes.fromhex(str(store.get_meta("token_secret")))),
            tenant_id=str(store.get_meta("tenant_id")),
            domain="contoso.onmicrosoft.com",
            sharepoint_host="contoso.sharepoint.com",
            settings=IdentitySettings(),
        )
        json.dump(inventory(tenant), sys.stdout, indent=2, ensure_ascii=False)
        print()
    finally:
        store.close()
    return 0
