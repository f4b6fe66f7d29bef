"""Authentication (passwords, tokens, login rate limits) and authorization (roles, region scope)."""
