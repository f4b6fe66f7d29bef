"""Form definitions as the server keeps them: drafts, immutable published versions, retirement."""
