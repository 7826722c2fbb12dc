"""``python -m gateway``: a gateway (``gridlink run gateway``)."""

import sys

from gateway.server import run_gateway
from services.entry import run_component

sys.exit(run_component("gateway", run_gateway))
