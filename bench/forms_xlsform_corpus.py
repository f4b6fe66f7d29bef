"""The time of importing each workbook of the XLSForm corpus (`tests/forms/xlsform_corpus`,
README.md there: how to collect them) with `forms.xlsform.import_xlsform`, as the upload
endpoint does before the database: each workbook's median over `--repeat` imports (CPU and wall
seconds), the whole corpus's sum of medians, the slowest workbooks, and each against issue 13's
limit of 1 s for one workbook. Figures, not a timed test; nothing is written.

    python bench/forms_xlsform_corpus.py [--repeat 3] [--slowest 8] [FOLDER]

FOLDER defaults to `FIELDSYNC_XLSFORM_CORPUS`, else `tests/forms/xlsform_corpus/files`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from forms.xlsform import import_xlsform

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "forms" / "xlsform_corpus"
LIMIT_SECONDS = 1.0


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slowest", type=int, default=8)
    args = parser.parse_args()
    folder = args.folder or Path(os.environ.get("FIELDSYNC_XLSFORM_CORPUS", CORPUS / "files"))
    names = sorted(json.loads((CORPUS / "expected.json").read_text()))
    present = [n for n in names if (folder / n).exists()]
    print(f"{len(present)} of {len(names)} corpus workbooks in {folder}")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"{cpu_model()}; load average {load()} at the start"
    )
    import_xlsform((folder / present[0]).read_bytes(), filename="warm.xlsx")  # module warm-up
    rows = []
    for name in present:
        content = (folder / name).read_bytes()
        cpu, wall = [], []
        for _ in range(args.repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            import_xlsform(content, filename=name.split("__")[-1])
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        rows.append((statistics.median(cpu), statistics.median(wall), len(content), name))
    print(f"load average {load()} at the end")
    total_cpu = sum(r[0] for r in rows)
    total_wall = sum(r[1] for r in rows)
    print(
        f"whole corpus (sum of medians of {args.repeat}): {total_cpu:.2f} CPU s, "
        f"{total_wall:.2f} wall s; median workbook {statistics.median(r[0] for r in rows):.3f} "
        "CPU s"
    )
    print("| workbook | size | CPU s | wall s | CPU / 1 s limit |")
    print("|---|---|---|---|---|")
    for cpu_s, wall_s, size, name in sorted(rows, reverse=True)[: args.slowest]:
        print(
            f"| {name} | {size / 1024:.0f} KB | {cpu_s:.3f} | {wall_s:.3f} | "
            f"{cpu_s / LIMIT_SECONDS:.2f} |"
        )


if __name__ == "__main__":
    main()
