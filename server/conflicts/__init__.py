"""Conflicts: concurrent differing writes to one field, kept for a supervisor to review."""
