"""Process-wide settings for a process that serves requests (a gunicorn worker, `fieldsync serve`).

Python's cyclic garbage collector runs a collection every 700 container allocations by default.
A push of 500 submissions allocates millions of short-lived objects while holding a large live
set (the batch, the loaded households), so collections kept rescanning it: about a fifth of a
push's time on the benchmark (docs/benchmarks.md). Reference counting frees nearly all of it
anyway; only cycles need the collector, and they can wait a little longer.
"""

from __future__ import annotations

import gc

# Collections of the youngest generation every 50,000 allocations instead of 700; the older
# generations keep their relative rhythm.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_for_serving() -> None:
    """Move everything alive now (the imported code, the app) out of the collector's view, and
    collect less often. Call once per process, after the app is built, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
