"""Alembic environment and schema versions of fieldsync."""
