"""Helpers of the Microsoft 365 tests: a simulated tenant with a repository (tenant),
backup and repository helpers (helpers), restore helpers (restoring)."""
