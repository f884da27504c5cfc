"""The package index's copy of README.md (`readme` is dynamic in pyproject.toml).

Everything else is in pyproject.toml. The README's links to files of this repository (`docs/`,
`examples/`) are relative: they work in a checkout and on a repository host, but not on a
package index, which has no such files. There is no public repository URL to make them
absolute with, so the index gets the README with each such link turned into its text and the
file's path in the source distribution, which ships those files (MANIFEST.in):
`[FAQ](docs/faq.md)` becomes ``FAQ (`docs/faq.md`)``. Links with a scheme and in-page anchors
are kept; fenced code blocks are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

LINK = re.compile(r"(?P<image>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
KEPT = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)
"""Targets left as they are: with a scheme (https:, mailto:) or an anchor in the page."""


def index_text(match: re.Match[str]) -> str:
    """One link or image as the index shows it."""
    text, target = match["text"], match["target"]
    if KEPT.match(target):
        return match[0]
    if match["image"]:
        return f"{text} (image: `{target}`)"
    if text.strip("`") == target:
        return f"`{target}`"
    return f"{text} (`{target}`)"


def index_readme(readme: str) -> str:
    """`readme` with every relative link and image made plain text naming its file."""
    lines, fenced = [], False
    for line in readme.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        lines.append(line if fenced else LINK.sub(index_text, line))
    return "".join(lines)


if __name__ == "__main__":  # run by setuptools' build backend
    from setuptools import setup

    setup(
        long_description=index_readme(
            Path(__file__).with_name("README.md").read_text(encoding="utf-8")
        ),
        long_description_content_type="text/markdown",
    )
