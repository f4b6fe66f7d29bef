"""Every exportable dataset, one module each. To add one: write its module
(columns, query, `register(Dataset(...))`) and import it here; routes, CLI, feed, ZIP bundle and
docs/exports.md pick it up from the registry."""

from server.exports.datasets import (  # noqa: F401  (each import registers its datasets)
    cases,
    households,
    members,
    review,
    summary,
    visits,
    warnings,
)
