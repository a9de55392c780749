"""``python -m app.supervisor PLAN``: the supervisor of ``dantaro api --workers N`` in a process of its own.

``dantaro api`` execs this (``app.supervisor.supervisor.supervise``): the same pid (systemd's main process), none of
the command line's imports. Exit status as every ``dantaro`` command: 0 stopped, 2 input the user can fix (the
address is taken, another supervisor holds the data directory) as one line, 1 anything else (one line).
"""

import sys

from app.errors import UsageError
from app.logging import configure_logging
from app.supervisor.supervisor import Supervisor, plan_from_json


def main(argv: list[str]) -> int:
    """Run the supervisor of the plan in ``argv[0]``; the exit status."""
    plan, logging = plan_from_json(argv[0])
    configure_logging(**logging)
    try:
        status = Supervisor(plan).run()
    except UsageError as exc:
        print(f"dantaro api: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one readable line, as the command line does
        print(f"dantaro api: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if status != 0:
        print("dantaro api: the API processes did not start; their log is above", file=sys.stderr)
    return status


sys.exit(main(sys.argv[1:]))
