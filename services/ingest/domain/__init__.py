"""Ingest's domain: what an image is here, and the rules it must pass."""
