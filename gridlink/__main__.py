"""``python -m gridlink``: the ``gridlink`` command."""

import sys

from gridlink.cli import main

sys.exit(main())
