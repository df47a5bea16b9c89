"""``coffer schedule list``, ``run`` and ``summary`` through the real command, and
malformed schedule tables refused with one line and exit code 16."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from .kit import Setup, make_setup, webhook_receiver


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


def test_schedule_list_shows_next_run_times_in_the_schedules_time_zone(setup: Setup) -> None:
    setup.write_config(
        f"""
[retention]
keep-last = 2

[[schedule]]
name = "nightly"
cron = ["30 2 * * *", "0 14 * * 1-5"]
timezone = "America/New_York"
paths = ["{setup.data}"]
retention = true
check_read_data = {{ cron = "0 5 1 * *", subset = "5%" }}
"""
    )
    rows = setup.cli("schedule", "list", "--json", "--count", "5", check=True).json()
    assert [(r["name"], r["kind"]) for r in rows] == [("nightly", "backup"), ("nightly", "check")]
    backup, check = rows
    assert backup["last_run"] is None
    assert backup["what"] == {"paths": [str(setup.data)]}
    zone = ZoneInfo("America/New_York")
    local = [datetime.fromisoformat(t).astimezone(zone) for t in backup["next"]]
    assert local == sorted(local)
    assert local[0] > datetime.now(zone)
    for t in local:  # 02:30 every day, or 14:00 on working days, New York time
        assert (t.hour, t.minute) == (2, 30) or ((t.hour, t.minute) == (14, 0) and t.weekday() < 5)
    assert all(datetime.fromisoformat(t).astimezone(zone).day == 1 for t in check["next"])

    result = setup.cli("schedule", "run", "nightly", "--json")
    assert result.code == 0, result.err
    run = result.json()
    assert run["messages"] == ["retention applied"]
    [after, _] = setup.cli("schedule", "list", "--json", check=True).json()
    assert after["last_run"]["outcome"] == "succeeded"
    assert after["last_run"]["run_id"] == run["run_id"]
    text = setup.cli("schedule", "list", check=True).out
    assert "nightly (backup): 30 2 * * * | 0 14 * * 1-5 (America/New_York)" in text
    assert "last succeeded at" in text


def test_a_failed_backup_exits_1_with_the_childs_error_in_the_result(setup: Setup) -> None:
    setup.write_config(
        f'[[schedule]]\nname = "gone"\ncron = "0 1 * * *"\npaths = ["{setup.data}/missing"]\n'
    )
    result = setup.cli("schedule", "run", "gone", "--json")
    assert result.code == 1
    run = result.json()
    assert run["outcome"] == "failed"
    assert run["exit_code"] == 1
    assert run["messages"] == [
        f"coffer backup exited with 1: coffer: cannot read {setup.data}/missing: "
        "No such file or directory"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "a"\ncron = "61 * * * *"', "is not a cron expression"),
        ('name = "a"\ncron = "* * * *"', "is not a cron expression"),
        ('name = "a"\ncron = "0 1 * * *"\ntimezone = "Mars/Olympus"', "unknown time zone"),
        ('name = "a b"\ncron = "0 1 * * *"', "'name' must be"),
        ('name = "a"\ncron = "0 1 * * *"\npaths = ["x"]\nusers = ["*"]', "not both"),
        ('name = "a"\ncron = "0 1 * * *"\nretention = true', "needs a [retention] table"),
        ('name = "a"\ncron = "0 1 * * *"\nenv = ["COFFER_PASSWORD"]', "may not name COFFER_"),
        ('name = "a"\ncron = "0 1 * * *"\npre = { argv = "ls -l" }', "no shell"),
        ('name = "a"\ncron = "0 1 * * *"\nnotify = { webhooks = ["x"] }', "no [[notify.webhook]]"),
        ('name = "a"\ncron = "0 1 * * *"\nwhen = "daily"', "unknown key 'when'"),
        (
            'name = "a"\ncron = "0 1 * * *"\n[notify.email]\nhost = "h"\nfrom = "a@b"\n'
            'security = "none"\nusername = "u"\npassword_file = "p"',
            "never sent without TLS",
        ),
    ],
)
def test_a_malformed_schedule_is_one_line_and_exit_16(
    tmp_path: Path, table: str, message: str
) -> None:
    setup = make_setup(tmp_path, with_repository=False)  # the table is refused first
    setup.write_config(f"[[schedule]]\n{table}\n")
    result = setup.cli("schedule", "list")
    assert result.code == 16
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_an_unknown_schedule_name_is_a_configuration_error(setup: Setup) -> None:
    setup.write_config('[[schedule]]\nname = "a"\ncron = "0 1 * * *"\npaths = ["."]\n')
    result = setup.cli("schedule", "run", "b")
    assert result.code == 16
    assert "no [[schedule]] named 'b' (known: a)" in result.err


def test_the_daily_summary_lists_each_owner_and_the_stale_ones(setup: Setup) -> None:
    setup.env.run("backup", "--path", str(setup.data))
    with webhook_receiver() as receiver:
        setup.write_config(
            f"""
[[notify.webhook]]
name = "slack"
url = "{receiver.url}"

[notify.summary]
cron = "0 8 * * *"
stale_hours = 0.0003
webhooks = ["slack"]
"""
        )
        time.sleep(1.2)  # older than 0.0003 h (1.08 s): stale
        result = setup.cli("schedule", "summary")
    assert result.code == 0, result.err
    [body] = receiver.bodies
    assert body["text"].startswith("coffer: daily summary, 1 stale owner(s)")
    assert f"folders/{setup.snapshots()[0]['owner']}: 20" in body["text"]
    assert "Stale:" in body["text"]
    assert "1 owner(s); 1 without a successful backup" in result.out


def test_the_example_in_the_operations_guide_is_accepted_as_written(setup: Setup) -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    section = guide.split("## Schedules, hooks and notifications", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    setup.write_config(example)
    rows = setup.cli("schedule", "list", "--json", check=True).json()
    assert [(r["name"], r["kind"]) for r in rows] == [
        ("nightly", "backup"),
        ("nightly", "prune"),
        ("nightly", "check"),
    ]
    assert rows[0]["what"] == {"users": ["*"], "services": ["mail", "onedrive", "calendar"]}
    assert rows[0]["timezone"] == "Europe/Berlin"


def test_retention_after_a_run_reaches_only_that_runs_owners_even_with_glob_characters(
    setup: Setup,
) -> None:
    # The schedule backs up the folder "d*"; the folder "d" is another owner with
    # two snapshots of its own. "d*" read as a glob would match "d" too.
    plain, starred = setup.root / "d", setup.root / "d*"
    for folder in (plain, starred):
        folder.mkdir()
        (folder / "f.txt").write_text(folder.name)
    setup.env.run("backup", "--path", str(plain))
    (plain / "g.txt").write_text("more")
    setup.env.run("backup", "--path", str(plain))
    setup.env.run("backup", "--path", str(starred))
    setup.write_config(
        f"""
[retention]
keep-last = 1

[[schedule]]
name = "starred"
cron = "0 1 * * *"
paths = ["{starred}"]
retention = true
"""
    )
    result = setup.cli("schedule", "run", "starred", "--json")
    assert result.code == 0, result.err
    assert result.json()["messages"] == ["retention applied"]
    owners = [s["owner"] for s in setup.snapshots()]
    assert sum(o.endswith("/d*") for o in owners) == 1  # 2 snapshots, 1 kept
    assert sum(o.endswith("/d") for o in owners) == 2  # untouched
