"""Pure PyTorch networks and their checkpoint formats. Knows nothing of the platform."""
