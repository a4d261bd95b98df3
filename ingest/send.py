"""`conekta-ingest send`: sign files exactly as Conekta does and post them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiohttp

from core import signature


async def send_files(files: Sequence[Path], url: str, key_path: Path | None) -> int:
    """Post each file; prints one line per file; returns how many were not answered 2xx."""
    key = signature.load_private_key(key_path) if key_path else None
    failures = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for path in files:
            body = path.read_bytes()
            headers = {"Content-Type": "application/json"}
            if key is not None:
                headers["DIGEST"] = signature.sign(body, key)
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    text = await response.text()
                    status = response.status
            except aiohttp.ClientError as exc:
                print(f"{path}: request failed: {exc}")
                failures += 1
                continue
            print(f"{path}: {status} {text}")
            failures += 0 if 200 <= status < 300 else 1
    return failures
