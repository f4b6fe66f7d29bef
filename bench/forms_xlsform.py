"""The time of one XLSForm import (`forms.xlsform.import_xlsform`, everything the upload
endpoint does before the database) for a ~300 KB workbook with 5,000+ choice rows: 60 questions
in Chinese and English, a 5,400-village cascading list. Limit: 1 s. Measured twice: as openpyxl
writes it, and as many tools write it (no `<dimension>` element in the sheets, which made
openpyxl parse every sheet in full before reading it). Figures, not a timed test; nothing is
written but the workbooks under /tmp/fieldsync-bench/xlsform.

    python bench/forms_xlsform.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import time
import zipfile
from pathlib import Path

from openpyxl import Workbook
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from forms.xlsform import import_xlsform

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


def without_dimensions(content: bytes) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(content)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            data = source.read(member)
            if member.filename.startswith("xl/worksheets/"):
                data = re.sub(rb"<dimension [^>]*/>", b"", data)
            target.writestr(member.filename, data)
    return out.getvalue()


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
    content = big_workbook()
    (OUT / "big.xlsx").write_bytes(content)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    for name, data in (
        ("as openpyxl writes it", content),
        ("without <dimension>", without_dimensions(content)),
    ):
        times = seconds(data, args.repeat)
        median = statistics.median(times)
        reference = statistics.median(pyxform_seconds(data, args.repeat))
        print(
            f"{name}: {len(data) / 1024:.0f} KB, 5,462 choice rows: median {median:.3f} s, "
            f"best {min(times):.3f} s over {args.repeat} imports = {median / LIMIT_SECONDS:.2f} "
            f"of the {LIMIT_SECONDS:.0f} s limit (CPU s); pyxform alone {reference:.3f} s, "
            f"import / pyxform alone = {median / reference:.2f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
