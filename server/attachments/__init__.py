"""Attachments (photos, signatures): content-addressed file storage, uploads checked against their
SHA-256 name, the submissions and villages that reference each file, and downloads limited to the
supervisors of those villages."""
