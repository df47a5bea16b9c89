"""Scale-out: Coffer's backups spread over workers on several machines.

Why here, in ``cli``: Celery and Redis are a way to deploy Coffer, not part of
what a backup is. The repository engine (store) and the Microsoft 365 source
(sources) know nothing of them; the per-owner path they already have
(TenantBackup.owner, one OwnerSession and snapshot per owner, checkpoints) is
the unit of work. What is new is deployment glue, like ``coffer serve``'s:
configuration (settings), the broker connection (broker), the job a worker
runs (jobs; restorejobs for restores), the owner lease across machines
(lease), throttling shared through Redis (limiter), the run's counters
(runstate), the coordinators that enqueue and follow a run (coordinator;
restores for restores), the one run report (runreport), and the ``coffer
worker`` process (worker).

Import rule: only ``settings`` and ``runreport`` import neither Celery nor
Redis; the command line imports the others only when a broker is configured,
so a one-process ``coffer backup`` loads no new dependency (tested).
"""

from cli.cluster.settings import BrokerUnreachable, ClusterSettings, RunStalled, cluster_settings

__all__ = ["BrokerUnreachable", "ClusterSettings", "RunStalled", "cluster_settings"]
