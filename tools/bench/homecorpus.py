"""The second benchmark corpus: a home directory, the shape the mail corpus lacks.

Deterministic from a seed, generated once into a directory and reused:

- ``src/project-NN/pkg-N/module-NNN.py``: many small source files (0.3 to
  24 KiB, log-uniform, code-like text); every fourth project vendors a copy
  of a shared library (``vendor/lib/``), as checkouts of one dependency do,
- ``vm/disk-N.img``: VM-image-sized sparse files (``vm_size`` apparent bytes,
  one 1 MiB extent of data every 16 MiB, holes in between),
- ``links/``: hard links to 2% of the source files (a second name of the same
  inode, as backup copies made with ``cp -al`` have), and a few symbolic links.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

_KEYWORDS = [
    "def",
    "return",
    "class",
    "import",
    "from",
    "self",
    "if",
    "else",
    "for",
    "in",
    "None",
    "True",
    "raise",
    "with",
    "as",
    "yield",
]
_NAMES = ["value", "items", "path", "config", "result", "count", "buffer", "handle", "name"]
DATA_EVERY = 16 * 1024 * 1024  # one extent of data per this many bytes of a VM image
EXTENT = 1024 * 1024


def _source(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    length = 0
    depth = 0
    while length < size:
        indent = "    " * depth
        words = " ".join(rng.choice(_KEYWORDS + _NAMES) for _ in range(rng.randrange(2, 9)))
        line = f"{indent}{words}({rng.choice(_NAMES)}_{rng.randrange(100)})"
        if rng.random() < 0.2:
            line += ":"
            depth = min(depth + 1, 4)
        elif rng.random() < 0.2:
            depth = max(depth - 1, 0)
        lines.append(line)
        length += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def generate_home(
    root: Path,
    *,
    projects: int = 40,
    files_per_project: int = 1000,
    vm_images: int = 3,
    vm_size: int = 2 * 1024**3,
    seed: int = 2027,
) -> Path:
    """Write the corpus under ``root`` (skipped if ``root/.complete`` exists)."""
    marker = root / ".complete"
    if marker.exists():
        return root
    rng = random.Random(seed)
    low, high = math.log(300), math.log(24 * 1024)
    library = [_source(rng, int(math.exp(rng.uniform(low, high)))) for _ in range(200)]
    sources: list[Path] = []
    for project in range(projects):
        base = root / "src" / f"project-{project:02d}"
        for number in range(files_per_project):
            folder = base / f"pkg-{number % 20}"
            if number < 20:
                folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"module-{number:04d}.py"
            path.write_bytes(_source(rng, int(math.exp(rng.uniform(low, high)))))
            sources.append(path)
        if project % 4 == 0:
            vendor = base / "vendor" / "lib"
            vendor.mkdir(parents=True)
            for number, content in enumerate(library):
                (vendor / f"lib-{number:03d}.py").write_bytes(content)
    vm = root / "vm"
    vm.mkdir(parents=True, exist_ok=True)
    for index in range(vm_images):
        with open(vm / f"disk-{index}.img", "wb") as handle:
            handle.truncate(vm_size)  # all holes, then some data
            for offset in range(0, vm_size - EXTENT + 1, DATA_EVERY):
                handle.seek(offset)
                handle.write(rng.randbytes(EXTENT // 2) + _source(rng, EXTENT // 2))
    links = root / "links"
    links.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(rng.sample(sources, max(1, len(sources) // 50))):
        os.link(path, links / f"copy-{number:05d}.py")
    for number in range(10):
        target = os.path.relpath(sources[number], links)
        os.symlink(target, links / f"symlink-{number}.py")
    marker.write_text("ok\n")
    return root


def change_home_one_percent(root: Path, *, seed: int = 7) -> int:
    """Edit 1% of the source files (a line appended) and 1 MiB of one VM image."""
    rng = random.Random(seed)
    files = sorted((root / "src").rglob("module-*.py"))
    chosen = rng.sample(files, max(1, len(files) // 100))
    for path in chosen:
        with open(path, "ab") as handle:
            handle.write(f"changed = {rng.random()}\n".encode())
    images = sorted((root / "vm").glob("*.img"))
    if images:
        with open(images[0], "r+b") as handle:
            handle.seek(DATA_EVERY * 2)
            handle.write(rng.randbytes(EXTENT))
    return len(chosen) + (1 if images else 0)
