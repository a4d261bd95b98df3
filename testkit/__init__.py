"""Helpers shared by tests/ and bench/ (never shipped): event builders, throwaway databases and
vhosts, a TCP proxy that cuts or stalls connections, polling waits."""
