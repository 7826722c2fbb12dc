"""`python -m gateway` is `gridlink run gateway`."""

import sys

from services.cli import main

sys.exit(main(["run", "gateway"]))
