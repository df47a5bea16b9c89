"""``coffer key``: passwords (key slots), master-key rotation, escrow and recovery.

New passwords come from ``--new-password-file FILE`` (as restic spells it) or
a prompt on a terminal, never from the command line.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from cli.app import App
from cli.errors import ConfigError, PasswordMissing
from cli.ui.output import echo, note, print_json, shown
from store import (
    KdfParams,
    StoreError,
    add_escrow_slot,
    add_password_slot,
    change_password,
    current_kdf,
    load_private_key,
    recover_with_escrow,
    remove_slot,
    rotate_master_key,
    slot_statuses,
)

_NEW_PASSWORD = click.option(
    "--new-password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the new password (else a prompt on a terminal).",
)
_KDF_MEMORY = click.option(
    "--kdf-memory",
    type=click.IntRange(8, 1024),
    help="Argon2id memory in MiB for the new slot (default: as the slot in use).",
)
_KDF_ITERATIONS = click.option(
    "--kdf-iterations",
    type=click.IntRange(1, 16),
    help="Argon2id passes for the new slot (default: as the slot in use).",
)


def _read_secret_file(path: Path, what: str) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    secret = raw.removesuffix(b"\n").removesuffix(b"\r")
    if not secret:
        raise ConfigError(f"{what} file {path} is empty")
    return secret


def new_password(file: Path | None) -> bytes:
    """The new password from ``file``, else asked twice on a terminal."""
    if file is not None:
        return _read_secret_file(file, "new password")
    if not sys.stdin.isatty():
        raise PasswordMissing("no new password: pass --new-password-file FILE")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat the new password: ") != first:
        raise ConfigError("the passwords do not match")
    if not first:
        raise ConfigError("an empty password is not allowed")
    return first.encode()


def _kdf(default: KdfParams, memory: int | None, iterations: int | None) -> KdfParams:
    return KdfParams(
        iterations=iterations if iterations is not None else default.iterations,
        lanes=default.lanes,
        memory_kib=memory * 1024 if memory is not None else default.memory_kib,
    )


@click.group("key")
def command() -> None:
    """Manage the repository's key slots (passwords and escrow keys)."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def list_command(app: App, as_json: bool) -> None:
    """List key slots; the one in use is marked with *, ignored ones (planted, stale,
    damaged) are named with the reason."""
    repo = app.open_repo()
    statuses = slot_statuses(repo)
    if as_json:
        print_json([s.__dict__ for s in statuses])
        return
    echo(f"  {'ID':<10}{'KIND':<10}{'ALGORITHM':<17}{'CREATED':<22}LABEL")
    for s in statuses:
        mark = "*" if s.current else " "
        echo(
            f"{mark} {shown(s.slot_id[:8]):<10}{s.kind:<10}{s.algorithm:<17}{s.created:<22}"
            f"{shown(s.label)}"
        )
        if s.problem:
            echo(f"    IGNORED: {s.problem}")
    ignored = sum(1 for s in statuses if s.problem)
    echo(f"{len(statuses) - ignored} slot(s)" + (f", {ignored} ignored" if ignored else ""))


@command.command("add")
@_NEW_PASSWORD
@click.option("--label", help="A label for the slot (default user@host).")
@_KDF_MEMORY
@_KDF_ITERATIONS
@click.pass_obj
def add_command(
    app: App,
    new_password_file: Path | None,
    label: str | None,
    kdf_memory: int | None,
    kdf_iterations: int | None,
) -> None:
    """Add a password: a new key slot for the same repository."""
    repo = app.open_repo()
    password = new_password(new_password_file)
    slot = add_password_slot(
        repo, password, label=label, kdf=_kdf(current_kdf(repo), kdf_memory, kdf_iterations)
    )
    note(f"added key slot {slot.slot_id[:8]} ({slot.label})")


@command.command("remove")
@click.argument("slot_id")
@click.pass_obj
def remove_command(app: App, slot_id: str) -> None:
    """Remove the key slot SLOT_ID (an ID prefix). The last password cannot be removed."""
    repo = app.open_repo()
    epoch = repo.keyring.current
    removed = remove_slot(repo, slot_id)
    note(f"removed key slot {removed[:8]}")
    if repo.keyring.current != epoch:
        note(
            f"key epoch {repo.keyring.current} is now current (the removed slot opens nothing new)"
        )


@command.command("passwd")
@_NEW_PASSWORD
@_KDF_MEMORY
@_KDF_ITERATIONS
@click.pass_obj
def passwd_command(
    app: App, new_password_file: Path | None, kdf_memory: int | None, kdf_iterations: int | None
) -> None:
    """Change the password of the slot in use."""
    repo = app.open_repo()
    password = new_password(new_password_file)
    slot = change_password(repo, password, kdf=_kdf(current_kdf(repo), kdf_memory, kdf_iterations))
    note(
        f"changed the password of key slot {slot.slot_id[:8]}; key epoch "
        f"{repo.keyring.current} is now current"
    )


@command.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def rotate_command(app: App, as_json: bool) -> None:
    """Make a new master data key current and rewrap the repository's slots.

    New data is encrypted with the new key; old data stays readable. Only
    the repository's own slots are rewrapped: a planted, stale or damaged
    slot is named, never given the new key, and dropped from the key set.
    One atomic write: if interrupted, run it again.
    """
    repo = app.open_repo()
    rotation = rotate_master_key(repo)
    if as_json:
        print_json(
            {
                "epoch": rotation.epoch,
                "rewrapped": rotation.rewrapped,
                "skipped": [{"slot": k, "reason": r} for k, r in rotation.skipped],
            }
        )
        return
    note(f"key epoch {rotation.epoch} is now current; rewrapped {len(rotation.rewrapped)} slot(s)")
    for name, reason in rotation.skipped:
        note(f"ignored, not given the new key: {name} {reason}")


@command.group("escrow")
def escrow_group() -> None:
    """Escrow keys: the master key sealed to an administrator's public key."""


@escrow_group.command("add")
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The administrator's X25519 or RSA public key (PEM, or a certificate).",
)
@click.option("--label", help="A label for the slot (default 'escrow').")
@click.pass_obj
def escrow_add_command(app: App, public_key: Path, label: str | None) -> None:
    """Add an escrow slot; 'coffer key recover' with the private key sets a new password."""
    repo = app.open_repo()
    slot = add_escrow_slot(repo, public_key.read_bytes(), label=label)
    alg = slot.fields["public_key"]["alg"]
    note(f"added escrow slot {slot.slot_id[:8]} ({alg}, {slot.label})")


@command.command("recover")
@click.option(
    "--private-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The administrator's private key matching an escrow slot (PEM).",
)
@click.option(
    "--private-key-password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the private key's passphrase, if it is encrypted.",
)
@_NEW_PASSWORD
@click.option("--label", help="A label for the new password slot (default 'recovered').")
@_KDF_MEMORY
@_KDF_ITERATIONS
@click.pass_obj
def recover_command(
    app: App,
    private_key: Path,
    private_key_password_file: Path | None,
    new_password_file: Path | None,
    label: str | None,
    kdf_memory: int | None,
    kdf_iterations: int | None,
) -> None:
    """Set a new password using an escrow key (no existing password needed)."""
    passphrase = (
        _read_secret_file(private_key_password_file, "private key password")
        if private_key_password_file
        else None
    )
    try:
        key = load_private_key(private_key.read_bytes(), passphrase)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None
    password = new_password(new_password_file)
    repo, slot = recover_with_escrow(
        app.backend(),
        key,
        password,
        label=label,
        kdf=_kdf(KdfParams(), kdf_memory, kdf_iterations),
        cache_root=app.cache_root(),
    )
    repo.close()
    note(f"added password slot {slot.slot_id[:8]} using escrow slot {repo.slot_id[:8]}")
