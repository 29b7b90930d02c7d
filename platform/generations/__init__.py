"""Generations: one record per output, written with its audit event."""
