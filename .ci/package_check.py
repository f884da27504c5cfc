"""`make package-check`: build the sdist and the wheel as a release would, and check them.

- `python -m build` (the sdist, then the wheel from the unpacked sdist: proof that the sdist
  is complete), with no deprecation warning from the build backend;
- `twine check --strict` on both (the metadata, and the long description renders);
- both hold LICENSE and `asynclog/py.typed`; the metadata says `License-Expression: MIT`, no
  license classifier, the version of `asynclog/_version.py`, `Typing :: Typed`;
- the index's long description has no relative link, and every file the README links to is in
  the sdist.

Exits non-zero with the reasons on stderr when anything is wrong.
"""

from __future__ import annotations

import email
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPRECATED = re.compile(r"DeprecationWarning|^\s*WARNING\b.*deprecated", re.IGNORECASE)
"""A deprecation warning of the build backend, as `python -m build` shows it."""
RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)", re.IGNORECASE)


def version() -> str:
    text = (ROOT / "asynclog" / "_version.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        sys.exit("package-check: no __version__ in asynclog/_version.py")
    return found[1]


def run(*command: str) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"package-check: {' '.join(command)} failed:\n{output}")
    return output


def metadata_problems(metadata: email.message.Message, expected_version: str) -> list[str]:
    problems = []
    if metadata["Version"] != expected_version:
        problems.append(f"Version {metadata['Version']!r}, _version.py says {expected_version!r}")
    if metadata["License-Expression"] != "MIT":
        problems.append(f"License-Expression {metadata['License-Expression']!r}, not 'MIT'")
    if metadata.get_all("License-File") != ["LICENSE"]:
        problems.append(f"License-File {metadata.get_all('License-File')!r}, not ['LICENSE']")
    if metadata["License"] is not None:
        problems.append("the deprecated License field is present")
    classifiers = metadata.get_all("Classifier") or []
    problems += [f"license classifier {c!r}" for c in classifiers if c.startswith("License ::")]
    for wanted in ("Typing :: Typed", "Framework :: AsyncIO"):
        if wanted not in classifiers:
            problems.append(f"classifier {wanted!r} missing")
    relative = RELATIVE_LINK.findall(metadata.get_payload())
    if relative:
        problems.append(f"relative links in the long description: {relative}")
    return problems


def check_wheel(wheel: Path, expected_version: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"asynclog-{expected_version}.dist-info"
        problems = [
            f"{wheel.name} lacks {name}"
            for name in ("asynclog/py.typed", f"{info}/licenses/LICENSE")
            if name not in names
        ]
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
    return problems + [f"{wheel.name}: {p}" for p in metadata_problems(metadata, expected_version)]


def check_sdist(sdist: Path, expected_version: str) -> list[str]:
    top = f"asynclog-{expected_version}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for target in RELATIVE_LINK.findall(readme)}
    wanted = {"LICENSE", "README.md", "CHANGELOG.md", "asynclog/py.typed", *linked}
    return [f"{sdist.name} lacks {name}" for name in sorted(wanted) if f"{top}/{name}" not in names]


def main() -> None:
    expected_version = version()
    with tempfile.TemporaryDirectory(prefix="asynclog-dist-") as out:
        log = run(sys.executable, "-m", "build", "--outdir", out, str(ROOT))
        warnings = sorted({line.strip() for line in log.splitlines() if DEPRECATED.search(line)})
        problems = [f"build warned: {line}" for line in warnings]
        wheels, sdists = sorted(Path(out).glob("*.whl")), sorted(Path(out).glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            sys.exit(f"package-check: expected one wheel and one sdist, got {wheels + sdists}")
        print(run(sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)))
        problems += check_wheel(wheels[0], expected_version)
        problems += check_sdist(sdists[0], expected_version)
    if problems:
        sys.exit("package-check: " + "\npackage-check: ".join(problems))
    print(
        f"package-check: asynclog {expected_version}: sdist and wheel built, twine check passed, "
        "LICENSE and py.typed in both, License-Expression MIT, README links fit the index"
    )


if __name__ == "__main__":
    main()
