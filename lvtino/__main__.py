import sys

from lvtino.cli import main

sys.exit(main())
