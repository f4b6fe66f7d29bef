"""Synchronisation with tablets: idempotent batched push with field-level merge, and scoped
incremental pull whose cursor never skips a change."""
