"""Worker processes for a backup's data path: reading, chunking, hashing and
compressing files outside this interpreter's GIL (``pool``, ``worker``, and
``wire``, the protocol between them)."""
