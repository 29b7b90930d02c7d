"""The HTTP API: app factory, dependencies, error rendering and the cross-cutting request helpers."""
