"""Firmware signing certificates and signatures: moved to the kernel
(:mod:`services.firmware_signatures`) so the HTTP API checks them as the CLI does; this name
stays for the commands service."""

from services.firmware_signatures import *  # noqa: F403
from services.firmware_signatures import SignatureError as SignatureError
