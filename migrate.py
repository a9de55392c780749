#!/usr/bin/env python
"""``python migrate.py [upgrade|downgrade|current|check] [REVISION]``: the same command as ``dantaro migrate``.

A shim like ``backend/analysis_worker.py``: same default action (upgrade to head), same ``downgrade`` rule (a REVISION
is required), same output and exit codes (0 done, 1 the migration failed, 2 bad input).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "backend"))

from app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["migrate", *sys.argv[1:]], owns_process=True))
