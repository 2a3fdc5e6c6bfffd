"""The package declares what it needs and ships what it reads.

The wheel itself is built, installed and started in
tests/integration/test_wheel.py; these are the fast checks on the metadata
that decide whether that can work.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

from cds_service import __version__, config

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = {"cds_service": ROOT / "cds_service", "cds_service.fhir_profiles": ROOT / "fhir_profiles"}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _top_level_imports() -> dict[str, str]:
    """Every absolute top-level module imported anywhere in cds_service -> one file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "cds_service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency():
    declared = {_normal(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    providers = packages_distributions()
    missing = {}
    for module, where in _top_level_imports().items():
        if module in sys.stdlib_module_names or module in ("cds_service", "__future__"):
            continue
        dists = {_normal(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported in {where}) is not installed"
        if not dists & declared:
            missing[module] = where
    assert not missing, f"imported but not in [project].dependencies: {missing}"


def test_every_sub_package_is_listed_and_the_knowledge_is_mapped_in():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "cds_service").rglob("__init__.py")}
    assert listed == on_disk | {"cds_service.fhir_profiles"}
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"cds_service.fhir_profiles": "fhir_profiles"}


def test_package_data_covers_every_data_file_in_the_source():
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    tracked = subprocess.run(["git", "ls-files", "cds_service", "fhir_profiles"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    uncovered = []
    for name in tracked:
        if name.endswith(".py"):
            continue
        path = ROOT / name
        package = "cds_service.fhir_profiles" if name.startswith("fhir_profiles/") else "cds_service"
        relative = path.relative_to(PACKAGE_DIRS[package])
        if not any(relative.match(glob) for glob in data.get(package, [])):
            uncovered.append(name)
    assert not uncovered, f"in the source but not shipped (add to [tool.setuptools.package-data]): {uncovered}"


def test_one_version_source_and_an_spdx_license():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cds_service.__version__"}
    assert __version__.count(".") == 2
    assert project["license"] == "Apache-2.0"
    assert all((ROOT / f).is_file() for f in project["license-files"])


def test_knowledge_is_package_data_and_data_goes_to_the_data_dir(tmp_path, monkeypatch):
    from importlib.resources import files

    assert config.DEFAULT_PROFILES_DIR == Path(str(files("cds_service.fhir_profiles")))
    assert (config.DEFAULT_PROFILES_DIR / "terminology").is_dir()
    monkeypatch.chdir(tmp_path)
    settings = config.from_env({})
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'var' / 'her2cds.db'}"
    elsewhere = config.from_env({"HER2CDS_DATA_DIR": str(tmp_path / "data")})
    assert elsewhere.resolved_database_url() == f"sqlite:///{tmp_path / 'data' / 'her2cds.db'}"
    assert config.from_env({"HER2CDS_PROFILES_DIR": "/k"}).profiles_dir == Path("/k")
