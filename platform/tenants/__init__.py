"""Tenants: the customers whose apps call the synthesis API, with their limits and status."""
