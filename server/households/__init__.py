"""The household register: households, their members, reading them within the caller's scope."""
