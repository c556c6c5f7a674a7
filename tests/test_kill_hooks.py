"""The kill hooks behind tests/test_kill_anywhere.py (slow) kill where they are told, and only there."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kill_hooks import hooked, phase_of_write, read_log

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from pathlib import Path
from rlkit.fileio import atomic_write_text

out = Path(sys.argv[1]) / "d"
out.mkdir(exist_ok=True)
for name in ["variant.json", "step_00000100.npy", "agent.pth", "step_00000200.npy", "CSRO_seed3.json"]:
    atomic_write_text(out / name, name)
print("finished")
"""


def run(tmp_path: Path, kill_at: str | None) -> tuple[subprocess.CompletedProcess, list]:
    script = tmp_path / "writer.py"
    script.write_text(SCRIPT)
    log = tmp_path / "kill.log"
    env = {**os.environ, "KILL_LOG": str(log)}
    env.pop("KILL_AT", None)
    if kill_at:
        env["KILL_AT"] = kill_at
    proc = subprocess.run(hooked([sys.executable, str(script), str(tmp_path)]), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, read_log(log)


def test_the_process_dies_at_the_nth_hit_of_its_phase_and_the_log_counts_every_hit(tmp_path):
    proc, hits = run(tmp_path, "data:2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the first data file and the snapshot are in place, the second data file is not (killed before its rename)
    assert hits == [("data", "d/step_00000100.npy"), ("snapshot", "d/agent.pth"), ("data", "d/step_00000200.npy")]
    assert (tmp_path / "d" / "step_00000100.npy").is_file() and (tmp_path / "d" / "agent.pth").is_file()
    assert not (tmp_path / "d" / "step_00000200.npy").exists() and not (tmp_path / "d" / "CSRO_seed3.json").exists()
    assert "finished" not in proc.stdout

    (tmp_path / "kill.log").unlink()
    proc, hits = run(tmp_path, None)  # no KILL_AT: nothing dies, every phase is still logged
    assert proc.returncode == 0 and "finished" in proc.stdout, proc.stderr
    assert [p for p, _ in hits] == ["data", "snapshot", "data", "record"]


def test_an_anchored_kill_counts_from_the_named_file_on(tmp_path):
    proc, hits = run(tmp_path, "data:1:d/agent.pth")  # the first data file after the snapshot
    assert proc.returncode == -signal.SIGKILL and hits[-1] == ("data", "d/step_00000200.npy"), (hits, proc.stderr)
    (tmp_path / "kill.log").unlink()
    proc, hits = run(tmp_path, "record:1:d/no-such-file")  # an anchor never written: no kill
    assert proc.returncode == 0 and [p for p, _ in hits] == ["data", "snapshot", "data", "record"]


def test_a_kill_that_cannot_land_is_seen_and_a_malformed_one_refused(tmp_path):
    (tmp_path / "kill.log").unlink(missing_ok=True)
    proc, hits = run(tmp_path, "data:3")  # only two data files: the command ends, the caller sees exit 0
    assert proc.returncode == 0 and [p for p, _ in hits].count("data") == 2
    proc, _ = run(tmp_path, "snapshots:1")
    assert proc.returncode != 0 and "expected PHASE:N[:NAME]" in proc.stderr


@pytest.mark.parametrize("name, phase", [("dataset.json", "data"), ("step_00000100.npy", "data"),
                                         ("agent_itr_5.pth", "snapshot"), ("agent.pth", "snapshot"),
                                         ("FOCAL_seed12.json", "record"), ("dataset_profile.json", "profile"),
                                         ("variant.json", None), ("progress.csv", None), ("state_ab.pt", None)])
def test_phases_of_the_files_the_project_writes(name, phase):
    assert phase_of_write(Path("/x") / name) == phase


def test_the_names_the_hooks_wrap_exist():
    """The hooks wrap os.replace (called by rlkit.fileio.atomic_file) and meta_train.evaluate; install()
    asserts both, so a refactor that moves either fails here, in the fast suite, not only in the slow one."""
    import rlkit.launchers.meta_train as meta_train
    from tests.kill_hooks import Hits, install

    real_replace, real_evaluate = os.replace, meta_train.evaluate
    try:
        install(Hits(None, None))
        assert os.replace is not real_replace and meta_train.evaluate is not real_evaluate
    finally:
        os.replace, meta_train.evaluate = real_replace, real_evaluate
