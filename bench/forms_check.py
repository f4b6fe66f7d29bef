"""Cost of checking one filled form: `forms.submission.check_submission` (validation and register
binding in one pass) on a batch of `household_visit` submissions, as the server runs it for every
submission of a push. No server, no database: the library alone, on synthetic households of four
(two adults, a child of compulsory-school age and one other member of random age).

    python bench/forms_check.py [--count 500] [--repeats 9] [--seed 1] [--profile]

Prints the median (and the fastest and slowest) microseconds per submission over the repeats,
each repeat checking the whole batch once, and the median CPU time of the process per submission
(steadier when other work shares the machine); the first check of a definition, which derives
what is static about it, is timed apart.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from register import machine_lines
from tablet import KnownHousehold, KnownMember, visit_answers

from forms.bundled import load_bundled_form
from forms.definition import FormDefinition
from forms.submission import check_submission

COLLECTED_AT = datetime(2025, 6, 3, 9, 30, tzinfo=UTC)
HEALTH = ("healthy", "healthy", "chronic", "disabled")
EMPLOYMENT = (None, "farming", "in_county", "in_province", "out_of_province")


def synthetic_households(count: int, rng: random.Random) -> list[KnownHousehold]:
    """`count` households of four with made-up ids and names: two adults, a child of 6-15 and
    one member of any age from a baby to a grandparent."""
    today = COLLECTED_AT.date()
    households = []
    for _ in range(count):
        ages = [rng.randint(25, 60), rng.randint(25, 60), rng.randint(6, 15), rng.randint(0, 90)]
        members = tuple(
            KnownMember(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                name=f"成员{index}",
                birth_date=_born(today, age, rng),
                insured=rng.random() < 0.9,
                health=rng.choice(HEALTH),
                employment=rng.choice(EMPLOYMENT) if age >= 16 else None,
            )
            for index, age in enumerate(ages)
        )
        households.append(
            KnownHousehold(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                village_code="990102001001",
                annual_income=Decimal(rng.randrange(8000, 60000, 10)),
                rev=1,
                members=members,
                member_revs=(1, 1, 1, 1),
            )
        )
    return households


def _born(today: date, age: int, rng: random.Random) -> date:
    """A birth date of someone `age` years old on `today`."""
    return date(today.year - age - 1, today.month, 1) + timedelta(days=rng.randint(31, 360))


def check_batch(definition: FormDefinition, batch: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Seconds to check every submission of `batch` once: elapsed, and CPU time of this process
    (less disturbed by other work on a shared machine)."""
    today = COLLECTED_AT.date()
    started, started_cpu = time.perf_counter(), time.process_time()
    for data in batch:
        check_submission(definition, data, today=today, now=COLLECTED_AT)
    return time.perf_counter() - started, time.process_time() - started_cpu


def timed_repeats(
    definition: FormDefinition, batch: Sequence[dict[str, Any]], repeats: int
) -> Iterator[tuple[float, float]]:
    """Microseconds per submission (elapsed, CPU), one pair per pass over `batch`."""
    for _ in range(repeats):
        elapsed, cpu = check_batch(definition, batch)
        yield elapsed / len(batch) * 1e6, cpu / len(batch) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="submissions in the batch")
    parser.add_argument("--repeats", type=int, default=9, help="passes over the batch to time")
    parser.add_argument("--seed", type=int, default=1, help="seed of households and answers")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of a pass")
    # `make bench` passes the register scripts' options to every script: accepted, unused here.
    parser.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(None if argv is None else list(argv))
    for line in machine_lines():
        print(line)

    rng = random.Random(args.seed)
    batch = [visit_answers(h, rng, COLLECTED_AT) for h in synthetic_households(args.count, rng)]
    definition = load_bundled_form("household_visit")
    today = COLLECTED_AT.date()
    started = time.perf_counter()
    first = check_submission(definition, batch[0], today=today, now=COLLECTED_AT)
    first_us = (time.perf_counter() - started) * 1e6
    checked = [check_submission(definition, data, today=today, now=COLLECTED_AT) for data in batch]
    refused = sum(1 for c in checked if c.issues)
    updates = sum(len(c.updates) for c in checked)
    assert first == checked[0]
    print(
        f"batch   : {len(batch)} household_visit submissions, {updates} register updates, "
        f"{refused} refused"
    )
    print(f"first check of the definition: {first_us:,.0f} µs")

    passes = list(timed_repeats(definition, batch, args.repeats))
    elapsed = sorted(figure for figure, _ in passes)
    cpu = statistics.median(figure for _, figure in passes)
    print(
        f"check_submission: median {statistics.median(elapsed):.1f} µs per submission "
        f"(fastest {elapsed[0]:.1f}, slowest {elapsed[-1]:.1f}; CPU time median {cpu:.1f}; "
        f"{args.repeats} passes)"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        check_batch(definition, batch)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
