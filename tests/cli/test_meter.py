"""The progress meter of check --read-data: rate and ETA."""

from __future__ import annotations

import time

from cli.ui.meter import Meter


def test_eta_and_rate() -> None:
    meter = Meter("check", enabled=False)
    meter.update(0, 10, 0, 1000)
    assert meter.eta_seconds() is None
    time.sleep(0.05)
    meter.update(5, 10, 500, 1000)
    eta = meter.eta_seconds()
    assert eta is not None
    assert 0 < eta < 5
    text = meter.render().plain
    assert "5/10 packs" in text
    assert "(50%)" in text
    assert "ETA" in text
    meter.update(10, 10, 1000, 1000)
    assert "ETA" not in meter.render().plain


def test_a_resumed_run_does_not_count_old_bytes_in_the_rate() -> None:
    meter = Meter("check", enabled=False)
    meter.update(8, 10, 800, 1000)  # resumed: 800 bytes were done before
    time.sleep(0.05)
    meter.update(9, 10, 850, 1000)
    eta = meter.eta_seconds()
    assert eta is not None
    assert eta > 0.1  # 150 bytes left at ~50 bytes per 0.05 s
