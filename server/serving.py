"""Process-wide settings for a process that serves requests (a gunicorn worker, `fieldsync serve`).

Python's cyclic garbage collector runs a collection every 700 container allocations by default.
A push of 500 submissions allocates millions of short-lived objects while holding a large live
set (the batch, the loaded households), so collections kept rescanning it: about a fifth of a
push's time on the benchmark (docs/benchmarks.md). Reference counting frees nearly all of it
anyway; only cycles need the collector, and they can wait a little longer.
"""

from __future__ import annotations

import gc
import socket

# Collections of the youngest generation every 50,000 allocations instead of 700; the older
# generations keep their relative rhythm.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_for_serving() -> None:
    """Move everything alive now (the imported code, the app) out of the collector's view, and
    collect less often. Call once per process, after the app is built, before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def pause_collection() -> bool:
    """Stop automatic collection for one large request (a push batch, a first pull): its
    hundreds of thousands of objects stay alive until it is answered, so every collection on
    the way would only scan them again (about a tenth of a push). Returns whether collection was
    on, to pass to `resume_collection` once the request's objects are gone."""
    was_enabled = gc.isenabled()
    gc.disable()
    return was_enabled


def resume_collection(was_enabled: bool) -> None:
    """Turn automatic collection back on after a request paused it. By then reference counting
    has freed what the request allocated; the survivors (and any cycle it made) are counted, so
    the next collection comes as soon as they add up. With several requests at once in a
    process, collection is back on when the first that turned it off ends."""
    if was_enabled:
        gc.enable()


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` (port 0: any free one), made the way Werkzeug's server
    makes its own (same address family, `SO_REUSEADDR`), so that `fieldsync serve` learns of a
    port in use before it builds the app. It does not listen yet: until `start_listening`,
    connections are refused, as they were before the process started. Raises `OSError`."""
    from werkzeug.serving import get_sockaddr, select_address_family

    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
    except BaseException:
        sock.close()
        raise
    return sock


def start_listening(sock: socket.socket) -> None:
    """Accept connections on a socket from `bind_port` (once the app is ready). Raises `OSError`
    (`EADDRINUSE` when another socket took the port meanwhile)."""
    from werkzeug.serving import LISTEN_QUEUE

    sock.listen(LISTEN_QUEUE)
