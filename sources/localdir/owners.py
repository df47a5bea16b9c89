"""Who owns a restored item, and which set-ID bits it keeps.

As tar does it: run as root, every item gets back the owner and group its
snapshot recorded (``owners="numeric"``, the default: the recorded uid and
gid; ``"names"``: the recorded user and group names looked up on this
machine, the numbers where a name is unknown; ``"none"``: left to whoever
restores). A set-user-ID bit survives only on a file whose owner is then the
recorded owner, a set-group-ID bit only on one whose group is the recorded
group: a restore as root never makes a user's setuid program a root-owned
setuid program, and a restore by another user (who cannot chown) strips both
bits, as does a snapshot that recorded no owner.

:func:`set_owner_and_mode` is the part that touches the file; it imports
nothing of the store, so the restore's writer process (sources/localdir/
writer.py) applies exactly the same rule to the files it writes.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the writer process imports this module without the store
    from store import Entry

OWNER_POLICIES = ("numeric", "names", "none")
_SET_ID_BITS = stat.S_ISUID | stat.S_ISGID


def set_owner_and_mode(fd: int, mode: int, uid: int | None, gid: int | None, chown: bool) -> None:
    """Give the open file or directory ``fd`` the owner ``uid``/``gid`` (when
    ``chown``; None leaves that one as it is), then ``mode`` without the
    set-ID bits its actual owner does not earn.

    An owner this system cannot map (EINVAL) or a file system that refuses
    (EPERM) is not an error: the bits are stripped instead. Raises OSError
    otherwise.
    """
    if chown and (uid is not None or gid is not None):
        try:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise
    mode &= 0o7777
    if mode & _SET_ID_BITS:
        st = os.fstat(fd)
        if uid is None or st.st_uid != uid:
            mode &= ~stat.S_ISUID
        if gid is None or st.st_gid != gid:
            mode &= ~stat.S_ISGID
    # Without set-ID bits there is nothing to strip: no stat per file.
    os.fchmod(fd, mode)


def _uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _gid_of(group: str) -> int:
    return grp.getgrnam(group).gr_gid


def _by_name(
    known: dict[str, int | None],
    name: str | None,
    look_up: Callable[[str], int],
    number: int | None,
) -> int | None:
    """The local ID of ``name`` (looked up once: ``known`` remembers it, and
    names this system lacks), else ``number``, the ID the snapshot recorded."""
    if name is None:
        return number
    if name not in known:
        try:
            known[name] = look_up(name)
        except KeyError:
            known[name] = None
    local = known[name]
    return number if local is None else local


class Ownership:
    """Which owner each restored item gets, and which set-ID bits it keeps.

    ``policy`` is one of OWNER_POLICIES. Only root changes owners; for anyone
    else the policy has no effect but the set-ID stripping. Thread-safe (the
    name caches may look a name up twice, harmlessly).
    """

    def __init__(self, policy: str = "numeric", *, chown: bool | None = None) -> None:
        if policy not in OWNER_POLICIES:
            raise ValueError(f"owners must be one of {OWNER_POLICIES}")
        self.policy = policy
        self.chown = (os.geteuid() == 0) if chown is None else chown
        self._uids: dict[str, int | None] = {}
        self._gids: dict[str, int | None] = {}

    @property
    def changes_owners(self) -> bool:
        """Whether items get their recorded owners (root, and a policy that says so)."""
        return self.chown and self.policy != "none"

    def recorded(self, entry: Entry) -> tuple[int | None, int | None]:
        """The uid and gid the item should have here (None: the snapshot does not say)."""
        uid = _int_attr(entry, "uid")
        gid = _int_attr(entry, "gid")
        if self.policy == "names":
            uid = _by_name(self._uids, entry.attrs.get("user"), _uid_of, uid)
            gid = _by_name(self._gids, entry.attrs.get("group"), _gid_of, gid)
        return uid, gid

    def apply(self, fd: int, entry: Entry) -> None:
        """Give the open file or directory its owner (as root), then its mode
        without the set-ID bits its actual owner does not earn."""
        uid, gid = self.recorded(entry)
        set_owner_and_mode(fd, entry.mode, uid, gid, self.changes_owners)

    def apply_link(self, dir_fd: int, name: bytes, entry: Entry) -> None:
        """Give a symlink its owner (links have no mode of their own)."""
        uid, gid = self.recorded(entry)
        if not self.changes_owners or (uid is None and gid is None):
            return
        try:
            os.chown(
                name,
                -1 if uid is None else uid,
                -1 if gid is None else gid,
                dir_fd=dir_fd,
                follow_symlinks=False,
            )
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise


def _int_attr(entry: Entry, key: str) -> int | None:
    value = entry.attrs.get(key)
    if value is None or not value.isdigit():
        return None
    return int(value)
