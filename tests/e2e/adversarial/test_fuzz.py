"""A fuzz pass over every jupyterhub-ds endpoint of the shared ``adversary_hub`` (issue 20, item 8).

Random methods, JSON and garbage bodies, names with unicode, ``..``, control characters and thousands of
characters, random query strings; sent by nobody, by a wrong token, by browser sessions with and without the XSRF
header and by tokens with random scopes (plain user, a delegate's filtered grants, an admin's read-only ones).
What must hold (tests/e2e/fuzzing.py): no answer ≥ 500, every error answer of an API route JSON
``{"status", "message"}``, no 2xx for a write by a caller without rights, and nothing changed by such callers
(users, groups, sign-ups, the trail, activity samples, claims, server pods: compared before and after). A second
pass by callers with rights (an admin's and the delegate's tokens, aimed at users made for it) checks the answers
only.

The run is seeded: ``FUZZ_SEED=<n>`` replays one (the seed is printed, and named in every failure);
``FUZZ_PER_ENDPOINT`` sets the requests per endpoint (default 200, in two passes). ci/bench/fuzz.py is the long run.
"""

from __future__ import annotations

import os
import random

import pytest

from .. import fuzzing
from .conftest import COURSE, DELEGATE

pytestmark = pytest.mark.cluster

PER_ENDPOINT = int(os.environ.get("FUZZ_PER_ENDPOINT", "200"))


@pytest.fixture(scope="module")
def seed() -> int:
    value = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nfuzz seed: {value} (replay with FUZZ_SEED={value})")
    return value


@pytest.fixture(scope="module")
def rng(seed) -> random.Random:
    return random.Random(seed)


@pytest.fixture(scope="module")
def cast(hub, admin, rng) -> fuzzing.Cast:
    return fuzzing.cast(rng, hub.url, admin, DELEGATE, COURSE)


def state(hub, admin, kube) -> dict:
    """The snapshot, and how many activity samples the hub has taken (its log says so at each)."""
    return {**fuzzing.snapshot(admin.api, kube.items), "ticks": hub.log_text().count("Activity sample:")}


def assert_unchanged(before: dict, after: dict, seed: int) -> None:
    """Equal, but for samples the in-hub sampler took meanwhile (every sampleIntervalSeconds): a sample requested
    by a caller without rights would have been a 2xx for a write, a finding of its own."""
    if after["ticks"] != before["ticks"]:
        before, after = {**before, "samples": None}, {**after, "samples": None}
    before, after = {**before, "ticks": None}, {**after, "ticks": None}
    assert after == before, f"seed {seed}: state changed"


def test_callers_without_rights_get_clean_refusals_and_change_nothing(hub, admin, kube, cast, rng, seed):
    before = state(hub, admin, kube)
    plan = fuzzing.plan(rng, fuzzing.ENDPOINTS, cast.no_rights, cast.strangers, PER_ENDPOINT * 3 // 5)
    outcome = fuzzing.run(hub.url, plan)
    print(fuzzing.report(hub.url, outcome))
    assert not outcome.findings, f"seed {seed}\n{fuzzing.report(hub.url, outcome)}"
    assert_unchanged(before, state(hub, admin, kube), seed)


def test_callers_with_rights_get_no_server_errors(hub, cast, rng, seed):
    plan = fuzzing.plan(rng, fuzzing.ENDPOINTS, cast.with_rights, cast.targets, PER_ENDPOINT * 2 // 5)
    outcome = fuzzing.run(hub.url, plan)
    print(fuzzing.report(hub.url, outcome))
    assert not outcome.findings, f"seed {seed}\n{fuzzing.report(hub.url, outcome)}"
