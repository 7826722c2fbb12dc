"""The names of the collections the commands service writes and operator tools read (the
CLI, the HTTP API): the commands service's repositories take their names from here, so a
reader outside that component never spells a collection name of its own.

``commands``: one document per command (``_id`` = command id) with its lifecycle and
``history`` (:mod:`commands.repository` writes it). The others belong to the commands
service's feature packages (``commands/<feature>/repository.py``), which say what their
documents hold.
"""

from __future__ import annotations

COMMANDS = "commands"
STATION_CONFIGURATION = "station_configuration"  # GetConfiguration snapshots, by station
RESERVATIONS = "reservations"
CHARGING_PROFILES = "charging_profiles"
STATION_GROUPS = "station_groups"
FIRMWARE_JOBS = "firmware_jobs"
SIGNED_FIRMWARE_JOBS = "signed_firmware_jobs"
DIAGNOSTICS_JOBS = "diagnostics_jobs"
LOG_JOBS = "log_jobs"
#: GridFS buckets (``<bucket>.files``, ``<bucket>.chunks``).
FIRMWARE_BUCKET = "firmware"
DIAGNOSTICS_BUCKET = "diagnostics"
LOG_BUCKET = "logs"
