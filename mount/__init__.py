"""Read-only FUSE view of a repository (pyfuse3 + trio)."""
