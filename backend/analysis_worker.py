"""Start the analysis worker: ``python backend/analysis_worker.py [--once]`` (same as ``dantaro worker``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]], owns_process=True))
