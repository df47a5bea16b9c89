"""The demo's realistic tenant: Microsoft 365 as it behaves in real life.

A small simulated tenant with ``--profile realistic`` (docs/simulator.md,
"Behaviours that break backups"): a file flagged as malware, a corrupt
message, one Exchange cannot hand out, a folder deleted during the run, a
user whose mailbox is on-premises, one without OneDrive, a locked site, an
empty Teams channel, a guest, an Office file SharePoint rewrites on download.
The first backup exits 3 and names each unreadable item with its error code;
the second exits 0 and still lists them; services that do not apply never
make a run partial. A small tenant and its own repository keep it to seconds.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tools.demo.steps import COFFER, run, say


def _shown(line: str) -> bool:
    return any(
        key in line
        for key in ("unreadable", "not backed up", "locked", "no usable", "owners (", "problem")
    )


def demo_m365_realistic(
    workdir: Path,
    env: dict[str, str],
    start_simulator: Callable[..., subprocess.Popen[bytes]],
) -> None:
    """Back the realistic tenant up twice; raises SystemExit if an exit code is not
    the one issue 13 asks for (3, then 0). ``start_simulator(state, scale, *args)``
    is the demo's (tools/demo/m365.py)."""
    state = workdir / "m365-realistic"
    say("A tenant that behaves like real Microsoft 365 (simulator --profile realistic)")
    sim = start_simulator(state, "small", "--profile", "realistic")
    real = {
        **env,
        "COFFER_REPO": str(workdir / "realistic-repository"),
        "COFFER_CONFIG": str(state / "coffer.toml"),
    }
    try:
        run([COFFER, "init"], real, show=False)
        for label, wanted in (("first backup", 3), ("second backup", 0)):
            say(f"Realistic tenant, {label}: expect exit code {wanted}")
            print("$ coffer backup", flush=True)
            proc = subprocess.run(
                [COFFER, "backup"], env=real, capture_output=True, text=True, check=False
            )
            for line in (proc.stdout + proc.stderr).splitlines():
                if _shown(line):
                    print(f"  {line.strip()}")
            print(f"  exit code {proc.returncode}")
            if proc.returncode != wanted:
                raise SystemExit(f"demo: the {label} exited {proc.returncode}, not {wanted}")
        say("Unreadable items are recorded in the snapshots: coffer find --kind failed")
        run([COFFER, "find", "--kind", "failed", "--limit", "3"], real)
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()
