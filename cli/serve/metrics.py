"""``/metrics``: the Prometheus text format, computed from each served repository's
overview (cli/serve/overview.py) and statistics.

Per owner (labels ``repository``, ``owner``, ``kind``): last success, last
attempt, last run's duration; counters summed over the stored run reports
(items, bytes read and added, failures, throttled seconds). Per repository:
size, deduplication and compression ratios, snapshots. Values come from the
console's caches, so a scrape never reads the whole repository.

Per scheduled job (labels ``schedule``, ``kind``: backup, prune, check), when
the scheduler runs (cli/schedules/): the next run time, the last run's end
and its outcome (``coffer_schedule_last_outcome`` is 1 for the outcome the
last run had, 0 for the others, a Prometheus state set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cli.serve.overview import Overview


@dataclass
class RepoFigures:
    """What the collector needs of one repository."""

    name: str
    overview: Overview
    size_bytes: int | None
    dedup_ratio: float | None
    compression_ratio: float | None


@dataclass
class JobFigures:
    """What the collector needs of one scheduled job."""

    schedule: str
    kind: str
    next_run: float
    last_outcome: str | None
    last_finished: float | None


@runtime_checkable
class ScheduleSource(Protocol):
    """A background service that can report its scheduled jobs (the scheduler)."""

    def job_figures(self) -> list[JobFigures]: ...


JOB_OUTCOMES = ("succeeded", "partial", "failed", "skipped", "interrupted")


def _job_metrics(jobs: list[JobFigures]) -> Iterator[Metric]:
    labels = ["schedule", "kind"]
    next_run = GaugeMetricFamily(
        "coffer_schedule_next_run_timestamp_seconds", "When the job runs next.", labels=labels
    )
    last_run = GaugeMetricFamily(
        "coffer_schedule_last_run_timestamp_seconds",
        "When the job's last run ended.",
        labels=labels,
    )
    outcome = GaugeMetricFamily(
        "coffer_schedule_last_outcome",
        "1 for the outcome of the job's last run, 0 for the others.",
        labels=[*labels, "outcome"],
    )
    for job in jobs:
        next_run.add_metric([job.schedule, job.kind], job.next_run)
        if job.last_finished is not None:
            last_run.add_metric([job.schedule, job.kind], job.last_finished)
        if job.last_outcome is not None:
            for name in JOB_OUTCOMES:
                outcome.add_metric([job.schedule, job.kind, name], float(name == job.last_outcome))
    yield from (next_run, last_run, outcome)


class _Collector(Collector):
    def __init__(
        self,
        figures: Callable[[], Iterable[RepoFigures]],
        jobs: Callable[[], list[JobFigures]] | None = None,
    ) -> None:
        self.figures = figures
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        labels = ["repository", "owner", "kind"]
        success = GaugeMetricFamily(
            "coffer_last_success_timestamp_seconds",
            "Time of the owner's newest complete snapshot.",
            labels=labels,
        )
        attempt = GaugeMetricFamily(
            "coffer_last_attempt_timestamp_seconds",
            "Time of the owner's newest backup run (complete or not).",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "coffer_backup_duration_seconds",
            "Duration of the owner's part of its newest run.",
            labels=labels,
        )
        counters = {
            name: CounterMetricFamily(f"coffer_backup_{name}", text, labels=labels)
            for name, text in (
                ("items", "Items read by backups (new, changed, unchanged), all stored runs."),
                ("bytes_read", "Bytes downloaded by backups, all stored runs."),
                ("bytes_added", "New content stored by backups (before compression)."),
                ("failures", "Failed owner runs plus skipped items, all stored runs."),
                ("throttled_seconds", "Seconds spent waiting on throttling, all stored runs."),
            )
        }
        repo_labels = ["repository"]
        size = GaugeMetricFamily(
            "coffer_repository_size_bytes", "Bytes the repository occupies.", labels=repo_labels
        )
        dedup = GaugeMetricFamily(
            "coffer_repository_dedup_ratio",
            "Logical bytes of all snapshots per distinct data byte.",
            labels=repo_labels,
        )
        compression = GaugeMetricFamily(
            "coffer_repository_compression_ratio",
            "Raw bytes per stored byte of referenced blobs.",
            labels=repo_labels,
        )
        snapshots = GaugeMetricFamily(
            "coffer_repository_snapshots", "Snapshots in the repository.", labels=repo_labels
        )
        for fig in self.figures():
            for owner in fig.overview.owners:
                values = [fig.name, owner.name, owner.kind]
                if owner.last_success is not None:
                    success.add_metric(values, owner.last_success)
                if owner.last_attempt is not None:
                    attempt.add_metric(values, owner.last_attempt)
                if owner.runs:
                    duration.add_metric(values, owner.runs[0][1].seconds)
                runs = [o for _, o in owner.runs]
                counters["items"].add_metric(values, sum(o.items for o in runs))
                counters["bytes_read"].add_metric(values, sum(o.bytes_read for o in runs))
                counters["bytes_added"].add_metric(values, sum(o.bytes_added for o in runs))
                counters["failures"].add_metric(
                    values, sum((o.status == "failed") + o.skipped for o in runs)
                )
                counters["throttled_seconds"].add_metric(
                    values, sum(o.throttled_seconds for o in runs)
                )
            snapshots.add_metric([fig.name], len(fig.overview.snapshots))
            if fig.size_bytes is not None:
                size.add_metric([fig.name], fig.size_bytes)
            if fig.dedup_ratio is not None:
                dedup.add_metric([fig.name], fig.dedup_ratio)
            if fig.compression_ratio is not None:
                compression.add_metric([fig.name], fig.compression_ratio)
        yield from (success, attempt, duration, *counters.values())
        yield from (size, dedup, compression, snapshots)
        if self.jobs is not None:
            yield from _job_metrics(self.jobs())


def render_metrics(
    figures: Callable[[], Iterable[RepoFigures]],
    jobs: Callable[[], list[JobFigures]] | None = None,
) -> bytes:
    """The exposition text of the figures ``figures()`` (and ``jobs()``, the
    scheduler's, when given) return at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(figures, jobs))
    return generate_latest(registry)
