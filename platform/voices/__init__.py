"""Voices: speakers' registered voices, their reference clips and fingerprints, protected voices."""
