"""``python -m authz``: the authz service (``gridlink run authz``)."""

import sys

from authz.service import main
from services.entry import run_component

sys.exit(run_component("authz", main))
