"""Submissions: every upload, kept verbatim and forever, with its outcome (or quarantine)."""
