"""`python -m transactions` is `gridlink run transactions`."""

import sys

from services.cli import main

sys.exit(main(["run", "transactions"]))
