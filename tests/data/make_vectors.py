"""Write the known-answer vectors of the current format version.

    .venv/bin/python -m tests.data.make_vectors tests/data/vectors/v<N>.json

Run once per format version (store/FORMAT.md §13) and commit the file; a
committed vector file is never rewritten (only the key slot vector may be,
when key slots gain a new slot version: see tests/store/test_vectors.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tests.store.vectors import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: vectors are never regenerated")
    args.out.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"vectors written to {args.out}")


if __name__ == "__main__":
    main()
