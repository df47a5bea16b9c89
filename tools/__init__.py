"""Coffer tools: the Microsoft 365 simulator, benchmarks and the demo. Nothing imports tools."""
