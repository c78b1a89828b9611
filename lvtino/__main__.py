"""The ``lvtino`` program and ``python -m lvtino``: the command line loads torch and the video libraries (seconds),
so an interruption while it loads ends in one line, not a traceback from inside an import."""

import sys


def entry() -> int:
    from lvtino.runtime import STARTING, starting  # light: the standard library only

    try:
        with starting():
            from lvtino.cli import run
    except KeyboardInterrupt:  # raised by a handler an embedding program installed
        sys.stderr.write(STARTING)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(entry())
