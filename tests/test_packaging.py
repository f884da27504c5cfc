"""The package's metadata sources, and the README the package index shows (setup.py).

`make package-check` (.ci/package_check.py, run by CI) builds the sdist and the wheel and
checks them; these tests check the inputs without building.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import asynclog

ROOT = Path(__file__).resolve().parents[1]


def load_setup() -> ModuleType:
    """setup.py as a module (it calls `setup()` only when run as `__main__`)."""
    spec = importlib.util.spec_from_file_location("asynclog_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relative_links_become_paths_and_the_rest_stays() -> None:
    index_readme = load_setup().index_readme
    text = (
        "See [the FAQ](docs/faq.md) and [docs/reading-logs.md](docs/reading-logs.md), "
        "[migrating](docs/migrating.md#from-structlog), [`x.py`](examples/x.py).\n"
        "Kept: [Keep a Changelog](https://keepachangelog.com/), [mail](mailto:a@b.c), "
        "[above](#example).\n"
        "![the chart](docs/img/bench.png)\n"
        "```python\n"
        "items[0](docs/not-a-link.md)\n"
        "```\n"
        "[after](docs/a.md)\n"
    )
    assert index_readme(text) == (
        "See the FAQ (`docs/faq.md`) and `docs/reading-logs.md`, "
        "migrating (`docs/migrating.md#from-structlog`), `x.py` (`examples/x.py`).\n"
        "Kept: [Keep a Changelog](https://keepachangelog.com/), [mail](mailto:a@b.c), "
        "[above](#example).\n"
        "the chart (image: `docs/img/bench.png`)\n"
        "```python\n"
        "items[0](docs/not-a-link.md)\n"
        "```\n"
        "after (`docs/a.md`)\n"
    )


def test_the_index_readme_has_no_relative_link_and_names_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"\]\((?!https?:|#)([^)\s#]+)", readme)
    assert named, "the README links to docs/ and examples/"
    assert [path for path in named if not (ROOT / path).is_file()] == []
    shown = load_setup().index_readme(readme)
    assert re.findall(r"\]\((?!https?:|mailto:|#)[^)]*\)", shown) == []
    assert all(f"`{path}" in shown for path in named)


def test_one_version_an_spdx_license_and_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    metadata = project["project"]
    assert "version" not in metadata and "version" in metadata["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "asynclog._version.__version__"
    }
    assert asynclog.__version__ == "0.1.0"
    assert (metadata["license"], metadata["license-files"]) == ("MIT", ["LICENSE"])
    assert not [c for c in metadata["classifiers"] if c.startswith("License ::")]
    assert {"Framework :: AsyncIO", "Typing :: Typed"} <= set(metadata["classifiers"])
    assert project["build-system"]["requires"] == ["setuptools>=77"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 the asynclog authors\n")
    assert (ROOT / "asynclog" / "py.typed").is_file()
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and "0.1.0" in changelog
