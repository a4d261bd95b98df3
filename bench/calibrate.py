"""How fast this machine is, so runs on different days can be compared: the same machine kind
here has run the whole bench at less than half the speed of a few hours before (the evening
and the night of 2026-12-04).

Three fixed workloads, timed before anything else starts: pure Python (the services' own code
runs at its speed), RSA-2048 verification (C, as the signature checks) and decoding the bench's
3.4 KB body (allocation and memory, as every service does per event). The first stayed flat
while the receiver's CPU per request rose by half within one evening: drift beyond the CPU's
own speed (caches and memory shared with other machines) shows in the third, if anywhere.
"""

from __future__ import annotations

import time

import orjson

from bench import events
from core import signature
from testkit import signing

LOOP = 5_000_000
VERIFIES = 2_000
DECODES = 20_000


def python_loop_ms() -> float:
    """The best of three: a loop of additions, as plain as Python gets."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(LOOP):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def rsa_verify_us() -> float:
    """The receiver's and the worker's own check (core.signature.verify), with the bench's key."""
    private, public = signing.key_pair()
    keys = signature.load_public_keys([public])
    body = b"x" * 3400
    digest = signature.sign(body, signature.load_private_key(private))
    started = time.perf_counter()
    for _ in range(VERIFIES):
        signature.verify(body, digest, keys)
    return round((time.perf_counter() - started) / VERIFIES * 1e6, 1)


def json_decode_us() -> float:
    body = events.paid_events(1)[0][0]
    started = time.perf_counter()
    for _ in range(DECODES):
        orjson.loads(body)
    return round((time.perf_counter() - started) / DECODES * 1e6, 2)


def measure() -> dict[str, float]:
    return {
        "python_loop_5m_ms": python_loop_ms(),
        "rsa_verify_us": rsa_verify_us(),
        "json_decode_3_4kb_us": json_decode_us(),
    }
