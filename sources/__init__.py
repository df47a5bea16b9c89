"""Readers (backup) and writers (restore): Microsoft 365 and local folders."""
