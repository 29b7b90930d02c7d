"""Consents: spoken statements with a nonce, verified, scoped, revocable by appending."""
