"""Administrative regions (12-digit division codes) and what a region grant covers."""
