"""API keys: creation (secret shown once), listing, revocation and request authentication."""
