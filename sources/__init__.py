"""Readers (backup) and writers (restore) for what Coffer protects: Microsoft 365 and local folders."""
