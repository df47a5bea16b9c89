"""``coffer init``: create a repository."""

from __future__ import annotations

import click

from cli.app import App
from cli.ui.output import note, print_json
from store import KdfParams, RepoConfig


@click.command("init")
@click.option(
    "--kdf-memory",
    type=click.IntRange(8, 1024),
    default=64,
    show_default=True,
    help="Argon2id memory in MiB (advanced).",
)
@click.option(
    "--kdf-iterations",
    type=click.IntRange(1, 16),
    default=3,
    show_default=True,
    help="Argon2id passes (advanced).",
)
@click.option(
    "--pack-size",
    type=click.IntRange(1, 128),
    default=16,
    show_default=True,
    help="Target pack size in MiB (advanced: smaller for slow links, larger for object stores).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def command(app: App, kdf_memory: int, kdf_iterations: int, pack_size: int, as_json: bool) -> None:
    """Create a new, empty repository protected by a password."""
    kdf = KdfParams(iterations=kdf_iterations, lanes=4, memory_kib=kdf_memory * 1024)
    repo = app.init_repo(kdf, RepoConfig.new(pack_size=pack_size * 1024 * 1024))
    if as_json:
        print_json({"id": repo.repo_id, "location": repo.backend.location})
    else:
        note(f"created repository {repo.repo_id} at {repo.backend.location}")
        note("keep the password safe: without it (or an escrow key) the data cannot be read")
