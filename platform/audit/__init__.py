"""Audit: the hash-chained event log and tracing a clip back to its generation."""
