#!/usr/bin/env python3
"""Known advisories in the locked packages (pip-audit), for CI and `make audit`.

    python scripts/audit.py locks/runtime.txt locks/dev.txt

Red (exit 1) when a locked package has a known advisory. An advisory database that cannot be
reached (no network, a mirror without PyPI's per-version JSON) does not turn CI red, but is said
plainly: "NOT AUDITED", with how many packages could not be checked. pip-audit alone would print
"No known vulnerabilities found" over a list of skipped packages. AUDIT_STRICT=1 makes an
unreachable database an error too (where auditing is a must).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT = 15  # seconds per request to the advisory database


@dataclass
class Audit:
    lock: str
    findings: list[str] = field(default_factory=list)  # "name version: id (fixed in ...)"
    audited: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: why"
    error: str = ""  # pip-audit could not run through at all (no JSON)

    @property
    def reached(self) -> bool:
        return not self.error and self.audited > 0


def read_report(lock: str, stdout: str, stderr: str) -> Audit:
    """pip-audit's JSON report (or its absence) as an Audit; pure."""
    audit = Audit(lock)
    try:
        report: dict[str, Any] = json.loads(stdout)
        dependencies = report["dependencies"]
    except (json.JSONDecodeError, KeyError, TypeError):
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        audit.error = lines[-1] if lines else "pip-audit printed no report"
        return audit
    for dependency in dependencies:
        name, version = dependency.get("name", "?"), dependency.get("version", "?")
        if "skip_reason" in dependency:
            audit.skipped.append(f"{name}: {dependency['skip_reason']}")
            continue
        audit.audited += 1
        for vuln in dependency.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            audit.findings.append(f"{name} {version}: {vuln.get('id', '?')} (fixed in {fixed})")
    return audit


def verdict(audits: list[Audit], strict: bool) -> tuple[int, list[str]]:
    """The exit code and what to print; pure."""
    lines, code = [], 0
    for audit in audits:
        if audit.findings:
            code = 1
            lines.append(f"VULNERABLE: {audit.lock}: {len(audit.findings)} known advisories")
            lines += [f"  {finding}" for finding in audit.findings]
        if not audit.reached:
            why = audit.error or f"all {len(audit.skipped)} packages skipped"
            lines.append(
                f"NOT AUDITED: {audit.lock}: the advisory database could not be reached ({why})"
            )
            if audit.skipped:
                lines.append(f"  e.g. {audit.skipped[0]}")
            code = max(code, 2 if strict else 0)
        elif audit.skipped:
            lines.append(
                f"PARTLY AUDITED: {audit.lock}: {audit.audited} packages checked, "
                f"{len(audit.skipped)} could not be:"
            )
            lines += [f"  {skipped}" for skipped in audit.skipped]
        if audit.reached and not audit.findings:
            lines.append(f"audited: {audit.lock}: {audit.audited} packages, no known advisory")
    if code == 0 and not all(a.reached for a in audits):
        lines.append(
            "pip-audit: advisories NOT checked (no advisory database here); CI stays green, "
            "but run `make audit` where PyPI's JSON API or OSV is reachable"
        )
    return code, lines


def run(lock: str) -> Audit:
    command = [
        str(Path(sys.executable).parent / "pip-audit"),
        "--requirement",
        lock,
        "--require-hashes",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        str(TIMEOUT),
    ]
    try:
        # Our own command line: pip-audit beside this Python, on a lock file we were given.
        result = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        return Audit(lock, error="pip-audit took longer than 10 minutes")
    return read_report(lock, result.stdout, result.stderr)


def main(locks: list[str]) -> int:
    code, lines = verdict([run(lock) for lock in locks], os.environ.get("AUDIT_STRICT") == "1")
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["locks/runtime.txt", "locks/dev.txt"]))
