"""The SQL registry: ORM classes for every table (schema changes only through Alembic)."""
