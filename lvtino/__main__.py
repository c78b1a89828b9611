import sys

from lvtino.cli import run

sys.exit(run())
