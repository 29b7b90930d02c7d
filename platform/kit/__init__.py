"""Shared pieces: database, blob store, audio I/O, hashing, pagination."""
