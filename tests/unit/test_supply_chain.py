"""What gets installed is pinned and checked (issue 24, finding 11): locks/ pins every package
with its hashes and satisfies pyproject.toml, whose floors sit above the known advisories; the
image and `make` install from the locks; CI audits them, and says so plainly when it cannot."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"runtime": ROOT / "locks/runtime.txt", "dev": ROOT / "locks/dev.txt"}
# Advisories the review named, with the first version that fixes them.
ADVISORIES = {
    "aiohttp": ["3.10.11", "3.12.14"],  # request smuggling (CVE-2024-52304, CVE-2025-53643)
    "cryptography": ["44.0.1"],  # its bundled OpenSSL (CVE-2024-12797)
    "jinja2": ["3.1.5", "3.1.6"],  # sandbox escapes (CVE-2024-56201, CVE-2025-27516)
}


def pins(lock: Path) -> dict[str, tuple[Version, list[str]]]:
    """name: (pinned version, its hashes), from a `uv pip compile --generate-hashes` file."""
    found: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", lock.read_text()):
        if block.startswith("#") or not block.strip():
            continue
        head = block.split(" \\", 1)[0].split(";", 1)[0].strip()
        name, _, version = head.partition("==")
        found[name.lower()] = (Version(version), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def project() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return table


def requirements(extra: str | None = None) -> list[Requirement]:
    listed = project()["optional-dependencies"][extra] if extra else project()["dependencies"]
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize("lock", LOCKS.values(), ids=LOCKS.keys())
def test_every_locked_package_is_pinned_with_hashes(lock: Path) -> None:
    locked = pins(lock)
    assert len(locked) > 20
    assert all(hashes for _, hashes in locked.values()), "a package without --hash"


@pytest.mark.parametrize(
    ("lock", "extra"), [(LOCKS["runtime"], None), (LOCKS["dev"], None), (LOCKS["dev"], "dev")]
)
def test_the_locks_satisfy_pyproject(lock: Path, extra: str | None) -> None:
    locked = pins(lock)
    for requirement in requirements(extra):
        if requirement.marker and not requirement.marker.evaluate({"sys_platform": "linux"}):
            continue
        name = requirement.name.lower()
        assert name in locked, f"{name} is not in {lock.name}: run `make lock`"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), (
            f"{lock.name} pins {name} {locked[name][0]}, pyproject wants {requirement.specifier}"
        )


def test_the_image_and_the_dev_tools_agree_on_shared_packages() -> None:
    runtime, dev = pins(LOCKS["runtime"]), pins(LOCKS["dev"])
    assert {name: runtime[name][0] for name in runtime} == {name: dev[name][0] for name in runtime}


@pytest.mark.parametrize("name", ADVISORIES)
def test_floors_sit_above_the_known_advisories(name: str) -> None:
    [requirement] = [r for r in requirements() if r.name.lower() == name]
    for fixed in ADVISORIES[name]:
        before = Version(fixed).release
        vulnerable = Version(".".join(map(str, (*before[:-1], before[-1] - 1))))
        assert not requirement.specifier.contains(vulnerable), f"{name} admits {vulnerable}"
    assert requirement.specifier.contains(Version(ADVISORIES[name][-1]))
    assert any(s.operator == "<" for s in requirement.specifier), f"{name} has no upper bound"


def test_the_image_make_and_ci_install_from_the_locks_and_audit() -> None:
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert "pip install --require-hashes -r locks/runtime.txt" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    assert not re.search(r"pip install [^\n]*==", dockerfile), "a pin outside the lock"
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r locks/dev.txt" in makefile
    assert "--no-deps --no-build-isolation -e ." in makefile
    ci = (ROOT / ".ci/run").read_text()
    assert "make audit" in ci


def load_audit() -> Any:
    spec = importlib.util.spec_from_file_location("audit", ROOT / "scripts/audit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _report(*dependencies: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


CLEAN = {"name": "orjson", "version": "3.13.0", "vulns": []}
VULNERABLE = {
    "name": "aiohttp",
    "version": "3.12.13",
    "vulns": [{"id": "GHSA-9548-qrrj-x5pj", "fix_versions": ["3.12.14"]}],
}
SKIPPED = {"name": "yarl", "skip_reason": "Dependency not found on PyPI and could not be audited"}


def test_a_known_advisory_turns_ci_red() -> None:
    audit = load_audit()
    report = audit.read_report("locks/runtime.txt", _report(CLEAN, VULNERABLE), "")
    code, lines = audit.verdict([report], strict=False)
    assert code == 1
    assert "  aiohttp 3.12.13: GHSA-9548-qrrj-x5pj (fixed in 3.12.14)" in lines


@pytest.mark.parametrize(
    ("stdout", "stderr"),
    [
        (_report(SKIPPED, {**SKIPPED, "name": "idna"}), ""),  # a mirror without the JSON API
        ("", "requests.exceptions.ConnectionError: Failed to resolve 'pypi.org'"),  # no network
    ],
)
def test_an_unreachable_advisory_database_is_said_plainly_not_red(stdout: str, stderr: str) -> None:
    audit = load_audit()
    report = audit.read_report("locks/dev.txt", stdout, stderr)
    code, lines = audit.verdict([report], strict=False)
    assert code == 0
    assert lines[0].startswith("NOT AUDITED: locks/dev.txt: the advisory database could not")
    assert "advisories NOT checked" in lines[-1]
    assert audit.verdict([report], strict=True)[0] == 2  # AUDIT_STRICT=1


def test_a_clean_audit_and_a_partial_one_say_what_they_checked() -> None:
    audit = load_audit()
    clean = audit.read_report("locks/runtime.txt", _report(CLEAN), "")
    assert audit.verdict([clean], strict=True) == (
        0,
        ["audited: locks/runtime.txt: 1 packages, no known advisory"],
    )
    partial = audit.read_report("locks/runtime.txt", _report(CLEAN, SKIPPED), "")
    code, lines = audit.verdict([partial], strict=False)
    assert code == 0
    assert lines[0] == "PARTLY AUDITED: locks/runtime.txt: 1 packages checked, 1 could not be:"
