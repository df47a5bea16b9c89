"""The ``coffer`` distribution ships the product alone, with each storage SDK an extra.

Builds the real wheel (pip, the build backend of pyproject.toml, in an isolated
environment) from a copy of this tree and reads what is inside: the four packages of
the product, not tools/ (the simulator, benchmarks, demo) or tests/, and metadata
where boto3, azure-storage-blob, google-cloud-storage and paramiko come only with
their extras and pyjwt only with the dev extra.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = {"store", "sources", "mount", "cli"}
EXTRAS = {
    "s3": "boto3",
    "azure": "azure-storage-blob",
    "gcs": "google-cloud-storage",
    "sftp": "paramiko",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    # A copy, so the build's own files (build/, *.egg-info) never land in the tree
    # that other tests run in.
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    out = work / "out"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("coffer-*.whl")
    return zipfile.ZipFile(built)


def metadata(wheel: zipfile.ZipFile) -> Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode("utf-8"))


def test_the_wheel_holds_the_product_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == PRODUCT
    assert not [n for n in names if n.startswith(("tools/", "tests/"))]
    # Every file of the product is there, code or not: the format spec its
    # modules cite, the typing markers, the web console's templates and styles.
    in_tree = {
        path.relative_to(ROOT).as_posix()
        for top in PRODUCT
        for path in (ROOT / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = sorted(in_tree - set(names))
    assert not missing, missing
    assert {
        "store/FORMAT.md",
        "cli/serve/templates/base.html",
        "cli/serve/static/console.css",
    } <= in_tree


def test_the_cloud_sdks_come_only_with_their_extras(wheel: zipfile.ZipFile) -> None:
    meta = metadata(wheel)
    assert set(EXTRAS) | {"all", "dev"} <= set(meta.get_all("Provides-Extra") or [])
    requires = meta.get_all("Requires-Dist") or []
    unconditional = [r for r in requires if "extra ==" not in r]
    for extra, distribution in EXTRAS.items():
        assert not [r for r in unconditional if r.lower().startswith(distribution)], unconditional
        assert [r for r in requires if r.startswith(distribution) and f'extra == "{extra}"' in r]
    assert not [r for r in unconditional if r.lower().startswith("pyjwt")]
    assert [r for r in requires if r.lower().startswith("pyjwt") and 'extra == "dev"' in r]
    # [all] is every backend.
    (everything,) = [r for r in requires if 'extra == "all"' in r]
    assert all(extra in everything for extra in EXTRAS), everything


def test_the_coffer_command_is_the_entry_point(wheel: zipfile.ZipFile) -> None:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "coffer = cli.main:main" in wheel.read(name).decode()
