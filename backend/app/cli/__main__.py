"""``python -m app.cli ARGS`` is ``dantaro ARGS``."""

import sys

from app.cli.main import main

sys.exit(main())
