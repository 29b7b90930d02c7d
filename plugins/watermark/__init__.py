"""VoiceSeal's built-in audio watermark: keyed spectral patchwork with a 32-bit payload.

Modules, in the order data flows: ``prf`` (keyed pseudo-random streams), ``layout`` (the tile
grid and its keyed assignment), ``code`` (tag and convolutional code), ``embed`` (streaming
embedder), ``features`` and ``detect`` (blind detector), ``audio`` (input checks), ``scheme``
(the :class:`~voiceseal.contracts.Watermarker`) and ``plugin`` (its registration).
README.md in this folder describes the design and derives the false-positive bound.
"""
