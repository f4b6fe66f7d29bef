"""The audit log: who did what to whom, above all every reveal of sensitive data."""
