"""requirements.lock, which `make deps` installs with --require-hashes: it pins every dependency that
pyproject.toml names (with the test and bench tools and what builds the project) to a release that
satisfies it, each with its hashes, and this environment is the lock's."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """Name -> (version, hashes) of every pin in the lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if found := PIN.match(line):
            current = canonicalize_name(found[1])
            pins[current] = (found[2], [])
        elif (stripped := line.strip()).startswith("--hash=sha256:") and current:
            pins[current][1].append(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif stripped and not stripped.startswith("#"):
            raise AssertionError(f"a line of requirements.lock that is no pin and no hash: {line!r}")
    return pins


def wanted() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    names = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["test"],
        *project["project"]["optional-dependencies"]["bench"],
        *project["build-system"]["requires"],
    ]
    return [Requirement(name) for name in names]


def test_every_dependency_is_pinned_with_hashes_to_a_release_pyproject_allows():
    pins = locked()
    assert len(pins) > 50
    for name, (_version, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    for requirement in wanted():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: run `make lock`"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, which pyproject.toml's {requirement} refuses: "
            "run `make lock`"
        )


def test_this_environment_is_the_lock():
    different = {}
    for name, (version, _hashes) in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            different[name] = (version, installed)
    assert not different, f"locked vs installed (run `make deps`): {different}"
