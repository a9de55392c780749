"""The read-only HTTP API.

Importing the package keeps ``pydantic.v1`` out of the process unless something imported it first: FastAPI imports
it while building each route only to refuse pydantic v1 models (this app has none) and takes an ``ImportError`` as
"none"; loading it would cost ~3 MB and ~0.1 s of start. ``tests/api/test_app.py`` checks what the API imports.
"""

import sys

sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]  # None: "not installed"
