"""`python -m commands` is `gridlink run commands`."""

import sys

from services.cli import main

sys.exit(main(["run", "commands"]))
