"""`python -m authz` is `gridlink run authz`."""

import sys

from services.cli import main

sys.exit(main(["run", "authz"]))
