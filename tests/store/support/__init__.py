"""Shared pieces of the engine tests: repositories, storage servers, faulty
backends, the child processes of the concurrency tests."""
