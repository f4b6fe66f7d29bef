"""Every exportable dataset, one module each. To add one: write its module
(columns, query, `register(Dataset(...))`), import it here and name it in `ORDER`; routes, CLI,
feed, ZIP bundle and docs/exports.md pick it up from the registry, in that order."""

from server.exports.datasets import (  # noqa: F401  (each import registers its datasets)
    cases,
    households,
    members,
    review,
    summary,
    visits,
    warnings,
)

# The order datasets are listed in (docs, ZIP bundle, the dataset list): the register first, then
# what was collected, then the review queues and the monitoring work. Not the order of imports,
# which one module importing another can change.
ORDER = (
    "households",
    "members",
    "visits",
    "visit_repeats",
    "conflicts",
    "quarantine",
    "cases",
    "case_steps",
    "warnings",
    "monitoring_summary",
)
