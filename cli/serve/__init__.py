"""``coffer serve``: the web console (docs/console.md).

    console = Console(serve_settings(config), [ServedRepo("main", repo)], cli_app, restore)
    app = create_app(console)           # an ASGI app (Starlette)
    serve(console)                       # uvicorn, until SIGTERM

Modules, one job each: config (the [serve] table), users (the users file,
Argon2id), ratelimit (sign-in lock-outs), audit (the audit log in the
repository), security (headers, CSP, sessions, CSRF, roles), overview (runs
and owners from reports and snapshots), metrics (/metrics), preview (mail
and item previews, nh3), jobs (restores through ``coffer restore``'s code),
services (the registry of background services), web (templates), login and
pages (the routes), app (the factory), server (uvicorn).
"""

from typing import TYPE_CHECKING

from cli.serve.config import ServeSettings, serve_settings
from cli.serve.users import ROLES, UserFile, read_password_file
from sources.lazy import resolve

if TYPE_CHECKING:
    from cli.serve.app import create_app
    from cli.serve.console import Console, ServedRepo
    from cli.serve.server import serve
    from cli.serve.services import BackgroundService, Services

# The web stack (Starlette, Jinja2, uvicorn, the restore code) is imported on
# first use: ``coffer serve user ...`` needs none of it.
_LAZY = {
    "create_app": "cli.serve.app",
    "Console": "cli.serve.console",
    "ServedRepo": "cli.serve.console",
    "serve": "cli.serve.server",
    "BackgroundService": "cli.serve.services",
    "Services": "cli.serve.services",
}


def __getattr__(name: str) -> object:
    return resolve(__name__, _LAZY, globals(), name)


__all__ = [
    "ROLES",
    "BackgroundService",
    "Console",
    "ServeSettings",
    "ServedRepo",
    "Services",
    "UserFile",
    "create_app",
    "read_password_file",
    "serve",
    "serve_settings",
]
