"""The reference engine: a bundled neural voice plus WORLD timbre transfer, on CPU, no download.

A baseline that runs anywhere, not a cloning model: it speaks with the bundled Piper voice and
then moves pitch statistics and spectral envelope toward the registered voice (DESIGN.md §6).
"""
