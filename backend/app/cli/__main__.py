"""``python -m app.cli ARGS`` is ``dantaro ARGS``."""

import sys

from app.cli import entry

sys.exit(entry())
