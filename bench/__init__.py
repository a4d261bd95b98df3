"""Benchmarks: `make bench` (python -m bench). Every figure is printed next to a floor measured in
the same run on the same services."""
