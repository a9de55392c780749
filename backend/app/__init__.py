"""Dantaro Central.

Importing the package keeps ``rich`` (and the ``pygments``/``attrs`` it loads) out of every ``dantaro`` process
unless something imported it first: structlog loads it whenever it is installed (the test tools bring it), while
``app.logging`` renders exceptions plainly and never uses it; it would cost the API ~5 MB and ~0.1 s of start. A
``None`` entry in ``sys.modules`` is Python's documented way to make an import fail (structlog then does without).
"""

import sys

sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # None: "not installed"
