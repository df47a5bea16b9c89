"""Reading snapshots as a file tree: the shared layout, the virtual file
system mount and ls use, snapshot selection, tree diffs, safe display text.

Imports store.repository and below.
"""
