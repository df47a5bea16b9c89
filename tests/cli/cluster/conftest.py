"""Fixtures of the scale-out tests: one redis-server and one simulated tenant per
module, a fresh repository per test, the broker emptied for a test that asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cli.cluster.kit import REPO_PASSWORD, RedisServer, running_redis
from tests.cli.support.helpers import CofferEnv, init, new_env
from tools.graphsim.testing import RunningTenant, running_tenant


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def client(broker: RedisServer) -> redis.Redis:
    """The module's broker, emptied: no run of an earlier test in it."""
    empty = broker.client()
    empty.flushall()
    return empty


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTenant]:
    root = tmp_path_factory.mktemp("sim")
    with running_tenant(root, seed=4, throttling=False) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path) -> CofferEnv:
    coffer = new_env(tmp_path / "coffer", REPO_PASSWORD + "\n")
    init(coffer)
    return coffer
