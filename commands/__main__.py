"""``python -m commands``: the commands service (``gridlink run commands``)."""

import sys

from commands.service import main
from services.entry import run_component

sys.exit(run_component("commands", main))
