"""Ingest's adapters: MongoDB repository and the CPU worker pool."""
