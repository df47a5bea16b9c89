"""The daily summary lists every owner the repository knows: those of the snapshots
and those only named by run reports (an owner whose every backup failed has no
snapshot and must show as never backed up, not vanish from the summary)."""

from __future__ import annotations

from pathlib import Path

from store import Repository, open_backend

from .kit import PASSWORD, make_setup


def test_an_owner_with_only_failed_runs_is_in_the_summary_as_never(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    setup.env.run("backup", "--path", str(setup.data))
    # A Microsoft 365 run whose one owner failed entirely: a report, no snapshot
    # (the shape coffer backup stores, sources/m365 run reports).
    with Repository.open(open_backend(str(setup.env.repo)), PASSWORD.encode()) as repo:
        repo.save_report(
            "backup",
            {
                "format": "coffer-backup-report",
                "version": 1,
                "kind": "backup",
                "source": "m365",
                "status": "failed",
                "run": "0" * 32,
                "owners": [
                    {
                        "kind": "users",
                        "key": "5b1c0d7e-0000-4000-8000-000000000001",
                        "name": "gone@contoso.example",
                        "status": "failed",
                        "error": "mailbox not found",
                        "services": {},
                    }
                ],
            },
        )
    setup.write_config('[notify.summary]\ncron = "0 8 * * *"\nstale_hours = 26\n')
    result = setup.cli("schedule", "summary", "--no-send")
    assert result.code == 0, result.err
    assert "2 owner(s); 1 without a successful backup in the last 26 h." in result.out
    stale = result.out.split("Stale:", 1)[1].split("Last successful", 1)[0]
    assert stale.strip() == "users/gone@contoso.example: never"
    assert f"folders/{setup.snapshots()[0]['owner']}: 20" in result.out
