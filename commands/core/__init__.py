"""Core profile commands: availability, configuration snapshots, remote start/stop checks."""
