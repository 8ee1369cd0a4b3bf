"""Ingest: turns bytes into a stored, validated, de-duplicated image."""
