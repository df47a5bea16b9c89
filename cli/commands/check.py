"""``coffer check``: verify the repository's structure, and with --read-data every byte."""

from __future__ import annotations

import click

from cli.app import App
from cli.ui.meter import Meter
from cli.ui.output import human_duration, human_size, note, print_json, shown
from store import CheckResult, CheckState, ExitCode, check_repository, format_time, record_check
from store import validate_subset as _validate_subset

_SHOWN = 60  # findings printed; the stored report has all of them


def _validate(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        _validate_subset(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _print_text(result: CheckResult, key: str) -> None:
    counts = result.counts
    note(
        f"checked {counts.get('snapshots', 0)} snapshots, {counts.get('index_objects', 0)} index "
        f"objects, {counts.get('packs', 0)} packs ({human_size(counts.get('pack_bytes', 0))}), "
        f"{counts.get('tree_blobs', 0)} tree and {counts.get('data_blobs', 0)} data blobs "
        "referenced"
    )
    if result.read_data:
        seconds = max((result.finished_ns - result.started_ns) / 1e9, 1e-6)
        read = counts.get("bytes_read", 0)
        note(
            f"read {counts.get('packs_read', 0)} of {counts.get('packs_selected', 0)} selected "
            f"packs ({human_size(read)}, {counts.get('blobs_verified', 0)} blobs) in "
            f"{human_duration(seconds)}, {human_size(read / seconds)}/s"
            + (" (resumed)" if result.resumed else "")
        )
    for count, problem in enumerate([*result.warnings, *result.errors], 1):
        if count > _SHOWN:
            note(f"... and {len(result.problems) - _SHOWN} more findings in the report")
            break
        note(f"{problem.severity}: {problem.message}")
    if result.bad_packs:
        note("damaged packs:")
        names = {s.id_hex: s for s in result.affected}
        for pack, reasons in sorted(result.bad_packs.items()):
            hit = [names[h] for h in result.pack_affects.get(pack, []) if h in names]
            owners = sorted({f"{s.owner.kind}/{shown(s.owner.name)}" for s in hit})
            note(f"  pack {pack}: {'; '.join(reasons)}")
            if hit:
                note(f"    affects {len(hit)} snapshot(s) of {', '.join(owners)}")
    if result.affected:
        note("snapshots that reference lost or damaged data:")
        for snap in result.affected:
            note(
                f"  {snap.short_id} {format_time(snap.time_ns, precision=0)} "
                f"{snap.owner.kind}/{shown(snap.owner.name)}{' (partial)' if snap.partial else ''}"
            )
    if result.damaged:
        note(
            f"the repository is damaged: {len(result.errors)} error(s); "
            "run 'coffer repair index' then 'coffer repair snapshots' "
            f"(report {key})"
        )
    else:
        note(f"no errors were found (report {key})")


@click.command("check")
@click.option("--read-data", is_flag=True, help="Read, decrypt and re-hash every blob.")
@click.option(
    "--subset",
    callback=_validate,
    metavar="N%|n/t",
    help="With --read-data: a random N% of the packs, or part n of t.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted --read-data run.")
@click.option(
    "--workers", type=click.IntRange(1, 16), default=2, show_default=True, help="Reader threads."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def command(
    app: App, read_data: bool, subset: str | None, resume: bool, workers: int, as_json: bool
) -> int:
    """Check the repository; exit code 13 when anything is damaged.

    Without --read-data: every small object is read and authenticated and
    every snapshot's trees are walked (tree blobs are read, data packs are
    not). With --read-data (or --subset): the chosen packs are read whole
    and every byte authenticated. Nothing in the repository is changed but
    the stored check report.
    """
    read_data = read_data or subset is not None or resume
    repo = app.open_repo()
    state = CheckState(repo.cache_dir)
    meter = Meter("check", enabled=not (app.quiet or as_json))
    try:
        with meter:
            result = check_repository(
                repo,
                read_data=read_data,
                subset=subset,
                resume=resume,
                state=state,
                progress=meter.update,
                workers=workers,
            )
    except KeyboardInterrupt:
        note("coffer: check interrupted; continue it with 'coffer check --resume'")
        raise
    key = record_check(repo, result, state)
    if as_json:
        print_json({**result.to_report(), "report": key})
    else:
        _print_text(result, key)
    return ExitCode.DAMAGED if result.damaged else ExitCode.OK
