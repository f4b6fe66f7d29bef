"""Tablets: registered on first login, revocable by an administrator."""
