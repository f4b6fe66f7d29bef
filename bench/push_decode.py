"""Decoding one push request body in process, without HTTP or a database: `json.loads` of a
500-submission `household_visit` body, `PushRequestSchema().load` of it (every submission checked
on its own, attachment references included), the content fingerprint of every item, and the
attachment digests every item refers to (walked again by `referenced_attachments`, and as the
loaded submission carries them). Synthetic households of four members stand in for a register;
prints the median of repeated runs of each step, in milliseconds.

    python bench/push_decode.py [--submissions 500] [--repeats 21] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal

from register import machine_lines
from tablet import HttpTablet, KnownHousehold, KnownMember, visit_batches

from sync_protocol.messages import (
    PushRequest,
    PushRequestSchema,
    referenced_attachments,
    submission_fingerprint,
)

HEALTH = ("healthy", "healthy", "chronic", "disabled")
EMPLOYMENT = ("farming", "in_county", "out_of_province", None)


def synthetic_households(count: int, seed: int = 1) -> list[KnownHousehold]:
    """`count` households of four (two adults, a school child, a grandparent) with random ids:
    what a tablet would know about them after a pull."""
    rng = random.Random(seed)
    households = []
    for number in range(count):
        births = (
            date(1975 + rng.randrange(10), 1 + rng.randrange(12), 1 + rng.randrange(28)),
            date(1977 + rng.randrange(10), 1 + rng.randrange(12), 1 + rng.randrange(28)),
            date(2012 + rng.randrange(6), 1 + rng.randrange(12), 1 + rng.randrange(28)),
            date(1945 + rng.randrange(10), 1 + rng.randrange(12), 1 + rng.randrange(28)),
        )
        members = tuple(
            KnownMember(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                name=f"成员{number}-{index}",
                birth_date=birth,
                insured=rng.random() < 0.9,
                health=rng.choice(HEALTH),
                employment=rng.choice(EMPLOYMENT),
            )
            for index, birth in enumerate(births)
        )
        households.append(
            KnownHousehold(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                village_code=f"4528021010{number % 100:02d}",
                annual_income=Decimal(rng.randrange(8_000, 60_000)),
                rev=1 + rng.randrange(5),
                members=members,
                member_revs=tuple(1 + rng.randrange(3) for _ in members),
            )
        )
    return households


def push_body(submissions: int) -> bytes:
    """One push request body of `submissions` household visits, as a tablet encodes it."""
    tablet = HttpTablet("http://127.0.0.1:9", "unused-token", str(uuid.uuid4()))
    [body] = visit_batches(tablet, synthetic_households(submissions), submissions)
    return body


def median_ms(step: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def decode_steps(body: bytes) -> dict[str, Callable[[], object]]:
    """Each step of decoding `body`, as the push route and `plan_push`/`accept_push` run it."""
    parsed = json.loads(body)
    loaded: PushRequest = PushRequestSchema().load(parsed)
    items = loaded["submissions"]
    if not all(item.is_valid for item in items):
        raise SystemExit(f"the generated body has invalid items: {items[0].errors}")
    steps: dict[str, Callable[[], object]] = {
        "json.loads(body)": lambda: json.loads(body),
        "PushRequestSchema().load": lambda: PushRequestSchema().load(parsed),
        "submission_fingerprint, every item": lambda: [
            submission_fingerprint(item.raw) for item in items
        ],
        "referenced_attachments(data), every item": lambda: [
            referenced_attachments(item.submission["data"])
            for item in items
            if item.submission is not None
        ],
        # What the server reads instead: the digests SubmissionSchema found while loading.
        "loaded referenced_attachments, every item": lambda: [
            item.submission["referenced_attachments"]
            for item in items
            if item.submission is not None
        ],
    }
    return steps


def main(argv: Iterator[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=500, help="submissions in the body")
    parser.add_argument("--repeats", type=int, default=21, help="timed runs of each step")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one run")
    parser.add_argument(
        "--reuse", action="store_true", help="accepted for `make bench`; nothing is generated here"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    for line in machine_lines()[:2]:
        print(line)
    body = push_body(args.submissions)
    steps = decode_steps(body)
    print(
        f"body    : {args.submissions} submissions, {len(body) / 1024:.0f} KiB; "
        f"median of {args.repeats} runs\n"
    )
    for name, step in steps.items():
        step()  # warm up (regex and schema caches)
        total = median_ms(step, args.repeats)
        each = total * 1000 / args.submissions
        print(f"{name:44} {total:8.2f} ms  ({each:6.1f} µs per submission)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for step in steps.values():
            step()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(f"\n-- cProfile of one run of every step\n{out.getvalue()}")


if __name__ == "__main__":
    main()
