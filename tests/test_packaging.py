"""Packaging: every data file the code reads at run time is in the installed package, and building
it raises none of setuptools' "package is absent" warnings (data folders are packages of their own).
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from setuptools.config.setupcfg import read_configuration

from server.config import PROJECT_ROOT

# Folders whose files the installed code reads (bundled forms, their samples, migrations, the
# console's templates, stylesheet, scripts and message catalogues).
DATA_SUFFIXES = (".json", ".mako", ".html", ".css", ".js", ".po")
SHIPPED_ROOTS = ("forms", "migrations", "server", "sync_protocol")


def _shipped_data_files() -> list[Path]:
    return sorted(
        path.relative_to(PROJECT_ROOT)
        for root in SHIPPED_ROOTS
        for path in (PROJECT_ROOT / root).rglob("*")
        if path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts
    )


def test_the_bundled_form_files_are_data_files_of_the_package():
    files = {str(path) for path in _shipped_data_files()}
    assert "forms/library/household_visit.json" in files
    assert "forms/library/samples/household_visit.json" in files


def test_every_folder_holding_data_files_is_a_listed_package_whose_data_globs_match_them():
    options = read_configuration(str(PROJECT_ROOT / "setup.cfg"))["options"]
    packages = set(options["packages"])
    package_data: dict[str, list[str]] = options["package_data"]
    for path in _shipped_data_files():
        # The nearest listed package that holds the file, as setuptools sees it.
        parts = path.parent.parts
        package = ".".join(parts)
        assert package in packages, (
            f"{path.parent} holds {path.name} but is not a listed package: setuptools warns "
            "'Package … is absent from the `packages` configuration'"
        )
        globs = package_data.get(package, [])
        assert any(fnmatch.fnmatch(path.name, glob) for glob in globs), (
            f"{path} is not matched by package_data[{package!r}] = {globs}"
        )


@pytest.mark.slow
def test_a_built_wheel_holds_the_bundled_forms_and_the_build_warns_of_no_absent_package(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), "."],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "No matching distribution found for setuptools" in output:
        pytest.skip("no package index to fetch setuptools for the build from")
    assert result.returncode == 0, output[-3000:]
    assert "is absent from the `packages` configuration" not in output
    (wheel,) = tmp_path.glob("fieldsync-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in _shipped_data_files():
        assert path.as_posix() in names
    assert "forms/bundled.py" in names and "migrations/env.py" in names
    assert not any(name.startswith(("tests/", "bench/", "docs/")) for name in names)
