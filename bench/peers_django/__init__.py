"""Bench-only: a Django admin changelist over lmsweb's own tables (bench/peers.py)."""
