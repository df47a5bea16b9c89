"""`python -m tools.graphsim ...` (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
