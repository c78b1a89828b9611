"""The ``lvtino`` program and ``python -m lvtino``: the command line loads torch and the video libraries (seconds),
so an interruption while it loads ends in one line, not a traceback from inside an import."""

import sys


def entry() -> int:
    try:
        from lvtino.cli import run
    except KeyboardInterrupt:
        print("lvtino: interrupted (SIGINT) while starting; nothing was done", file=sys.stderr)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(entry())
