"""Local Authorization Lists: derived from the id-tag store, kept in sync with SendLocalList."""
