"""The time of one XLSForm import (`forms.xlsform.import_xlsform`, everything the upload
endpoint does before the database) for workbooks with 5,000+ choice rows: 60 questions in
Chinese and English, a 5,400-village cascading list. Limit (issue 13): a 300 KB workbook with
5,000+ choice rows in under 1 s. Two workbooks: the 155 KB one of the earlier figures, and a
315–340 KB one for the issue's figure (the same form with hints, constraint messages, and
village attributes: county, 12-digit administrative code, population, households, altitude).
Each is measured as openpyxl writes it (every text inline), as Excel and most tools write it (a
shared strings table), and without `<dimension>` elements (which made openpyxl parse every
sheet in full before reading it). Figures, not a timed test; nothing is written but the
workbooks under /tmp/fieldsync-bench/xlsform.

    python bench/forms_xlsform.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

from openpyxl import Workbook
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from forms.xlsform import import_xlsform

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.forms.xlsx_shapes import (  # the repository's test helpers
    issue_workbook,
    with_shared_strings,
    without_dimensions,
)

LIMIT_SECONDS = 1.0
OUT = Path("/tmp/fieldsync-bench/xlsform")


def big_workbook() -> bytes:
    book = Workbook()
    survey = book.active
    assert survey is not None
    survey.title = "survey"
    survey.append(
        [
            "type",
            "name",
            "label::Chinese (zh)",
            "label::English (en)",
            "required",
            "choice_filter",
            "relevant",
            "constraint",
        ]
    )
    survey.append(["select_one townships", "township", "乡镇", "Township", "yes", None, None, None])
    survey.append(
        [
            "select_one villages",
            "village",
            "村",
            "Village",
            "yes",
            "township=${township}",
            None,
            None,
        ]
    )
    for n in range(58):
        kind = ("integer", "text", "select_one yes_no", "decimal", "date")[n % 5]
        survey.append(
            [
                kind,
                f"q{n}",
                f"问题{n}",
                f"Question {n}",
                "yes" if n % 3 else None,
                None,
                f"${{q{n - 1}}} != ''" if n % 7 == 1 else None,
                ". >= 0" if kind == "integer" else None,
            ]
        )
    choices = book.create_sheet("choices")
    choices.append(["list_name", "name", "label::Chinese (zh)", "label::English (en)", "township"])
    choices.append(["yes_no", "yes", "是", "Yes", None])
    choices.append(["yes_no", "no", "否", "No", None])
    for t in range(60):
        choices.append(["townships", f"t{t:03d}", f"乡镇{t}", f"Township {t}", None])
    for v in range(5_400):
        choices.append(
            ["villages", f"v{v:05d}", f"村庄{v}号", f"Village number {v}", f"t{v % 60:03d}"]
        )
    settings = book.create_sheet("settings")
    settings.append(["form_id", "form_title"])
    settings.append(["village_screening", "Village screening"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def seconds(content: bytes, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        result = import_xlsform(content)
        times.append(time.process_time() - start)
        assert result.definition is not None, [i for i in result.issues if i.blocking]
    return times


def pyxform_seconds(content: bytes, repeat: int) -> list[float]:
    """The reference measured in the same run: pyxform 4 alone reading and converting the
    workbook (what any XLSForm tool pays), CPU seconds."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        workbook_to_json(get_xlsform(content, file_type=".xlsx"), warnings=[])
        times.append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    for workbook, content in (("60 questions", big_workbook()), ("issue 13", issue_workbook())):
        for shape, data in (
            ("as openpyxl writes it", content),
            ("shared strings, as Excel writes it", with_shared_strings(content)),
            ("without <dimension>", without_dimensions(content)),
        ):
            file_name = f"{workbook}-{shape.split(',')[0]}".replace(" ", "_").replace("<", "")
            (OUT / f"{file_name.replace('>', '')}.xlsx").write_bytes(data)
            times = seconds(data, args.repeat)
            median = statistics.median(times)
            reference = statistics.median(pyxform_seconds(data, args.repeat))
            print(
                f"{workbook}, {shape}: {len(data) / 1024:.0f} KB, 5,462 choice rows: median "
                f"{median:.3f} s, best {min(times):.3f} s over {args.repeat} imports = "
                f"{median / LIMIT_SECONDS:.2f} of the {LIMIT_SECONDS:.0f} s limit (CPU s); "
                f"pyxform alone {reference:.3f} s, import / pyxform alone = "
                f"{median / reference:.2f}"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
