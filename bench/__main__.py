"""`python -m bench [--quick]`: see bench/README.md and bench/run.py."""

from __future__ import annotations

import sys

from bench.run import main

sys.exit(main())
