"""Firmware and diagnostics: jobs, notifications, and the file server chargers use."""
