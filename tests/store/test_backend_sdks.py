"""Each cloud or SSH SDK is an extra of the distribution (``coffer[s3]``, ...): without
it, opening that backend fails in one line that names the extra, with its own exit
code, and everything else (a local repository) works.

"Not installed" is real here: the ``coffer`` executable runs with a ``sitecustomize``
that puts a finder at the front of ``sys.meta_path`` which answers every import of
the SDK's packages with ModuleNotFoundError, exactly what Python raises when the
distribution is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import store.backend as backend
from store import BackendNotInstalled, ExitCode
from tests.cli.support.helpers import make_tree, new_env

# The URL of each scheme, its extra, and the import roots its SDK (with the SDK's own
# dependencies) provides.
SCHEMES = [
    ("s3:bucket/prefix", "s3", ("boto3", "botocore", "s3transfer")),
    ("azure:container/prefix", "azure", ("azure",)),
    ("gs:bucket/prefix", "gcs", ("google",)),
    ("sftp:backup@127.0.0.1:2222/srv/repo", "sftp", ("paramiko",)),
]
EVERY_SDK = tuple(root for _, _, roots in SCHEMES for root in roots)

_BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {blocked!r}


class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def without(tmp_path: Path, roots: tuple[str, ...]) -> dict[str, str]:
    """Environment variables that make ``roots`` unimportable in the child."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER.format(blocked=tuple(roots)))
    return {"PYTHONPATH": str(site)}


@pytest.mark.parametrize(("url", "extra", "roots"), SCHEMES, ids=[s[1] for s in SCHEMES])
def test_a_backend_without_its_sdk_fails_in_one_line_naming_the_extra(
    tmp_path: Path, url: str, extra: str, roots: tuple[str, ...]
) -> None:
    env = new_env(tmp_path / "env")
    for command in (["snapshots"], ["init", "--kdf-memory", "8", "--kdf-iterations", "1"]):
        result = env.run(*command, check=False, COFFER_REPO=url, **without(tmp_path, roots))
        assert result.code == ExitCode.BACKEND_NOT_INSTALLED, (command, result.err)
        assert result.err.count("\n") == 1, result.err
        assert f"pip install 'coffer[{extra}]'" in result.err, result.err
        assert "Traceback" not in result.err
        assert "unexpected error" not in result.err


def test_a_local_repository_needs_no_sdk_at_all(tmp_path: Path) -> None:
    env = new_env(tmp_path / "env")
    block = without(tmp_path, EVERY_SDK)
    env.run("init", "--kdf-memory", "8", "--kdf-iterations", "1", **block)
    source = tmp_path / "source"
    make_tree(source, files=3)
    env.run("backup", "--path", str(source), **block)
    restored = tmp_path / "restored"
    env.run("restore", "latest", "--to-dir", str(restored), **block)
    assert sorted(p.name for p in restored.rglob("*")) == sorted(p.name for p in source.rglob("*"))
    assert len(env.run("snapshots", "--json", **block).json()) == 1


def test_a_missing_module_of_ours_is_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the SDK's own packages mean "install the extra"; a module of Coffer that
    # is missing is a broken installation and must say so, not send the
    # administrator to pip.
    monkeypatch.setitem(backend._SCHEMES, "s3", "store.backend.no_such_module:from_url")
    with pytest.raises(ModuleNotFoundError) as caught:
        backend.open_backend("s3:bucket/prefix")
    assert not isinstance(caught.value, BackendNotInstalled)
    assert caught.value.name == "store.backend.no_such_module"
