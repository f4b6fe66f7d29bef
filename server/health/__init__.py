"""Liveness and readiness: version, database kind, migration state."""
