"""Firmware, diagnostics and logs: jobs, notifications, signatures, and the file server
chargers use (UpdateFirmware, GetDiagnostics, and the Security Whitepaper's GetLog and
SignedUpdateFirmware). The wiring is in :mod:`commands.files.hooks`."""
