"""``python -m transactions``: the transactions service (``gridlink run transactions``)."""

import sys

from services.entry import run_component
from transactions.service import main

sys.exit(run_component("transactions", main))
