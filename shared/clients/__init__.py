"""Clients for the three stores, built from settings (never at import time)."""
