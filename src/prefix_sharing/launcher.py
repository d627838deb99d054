"""Entry point of the ``prefix-sharing`` command: quiet on Ctrl-C from the start.

Importing the command line and what it needs takes a moment. A Ctrl-C or
SIGTERM in that moment ends the command with the same single line as one that
comes later, not with a traceback. Ctrl-C must interrupt even where the parent
ignores SIGINT (a job in the background of a script); SIGTERM unwinds the same
way, so temporary files are removed on the way out.
"""

import signal
import sys

INTERRUPTED = "prefix-sharing: interrupted; no partial output kept"


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def interrupt_on_signals():
    """Make Ctrl-C and SIGTERM raise KeyboardInterrupt in this process."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)


def main(argv=None):
    interrupt_on_signals()
    try:
        from prefix_sharing import cli

        return cli.main(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
