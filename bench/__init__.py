"""Benchmarks: `make bench` runs every bench/*.py module's main() and prints figures."""
