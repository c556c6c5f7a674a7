"""`make demo` end to end on tiny settings: dataset, CSRO meta-training, the three protocols,
progress.csv, the plot and the closing summary (the demo's own commands, shrunk)."""

from __future__ import annotations

import pandas as pd

from rlkit import demo
from rlkit.cli import policy_train

TINY_SAC = ["num_train_steps=300", "num_seed_steps=100", "eval_frequency=100", "num_eval_sample_episodes=5",
            "agent.hidden_dim=32", "agent.batch_size=32"]


def test_demo_writes_progress_a_plot_and_a_summary(tmp_path, monkeypatch, capsys):
    real_policy_train = policy_train.main
    monkeypatch.setattr(policy_train, "main", lambda argv: real_policy_train([*argv, *TINY_SAC]))
    monkeypatch.setattr(demo, "QUICK_EPOCHS", "[100,300,100]")  # the tiny schedule's checkpoints
    assert demo.main(["--out", str(tmp_path / "demo"), "--iterations", "2", "--steps-per-itr", "3"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "demo" / "output" / "point-robot" / "demo" / "seed0"
    progress = pd.read_csv(run_dir / "progress.csv")
    assert list(progress["Epoch"]) == [0, 1]
    for key in ("Average_OnlineReturn_all_test_tasks", "Average_OfflineReturn_all_test_tasks",
                "Average_NpOnlineReturn_all_test_tasks"):
        assert progress[key].between(-60.0, 0.0).all()  # 20-step point-robot episodes: returns in (-60, 0]
        assert f"  {key}" in out
    assert (run_dir / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "10 held-out tasks; uniform-random policy -20" in out and "progress.csv:" in out
    # run again: the demo's own previous run is replaced, the finished dataset is reused as it is
    dataset_json = tmp_path / "demo" / "offline_dataset" / "point-robot" / "dataset.json"
    before = dataset_json.stat().st_mtime_ns, dataset_json.read_bytes()
    assert demo.main(["--out", str(tmp_path / "demo"), "--iterations", "1", "--steps-per-itr", "3"]) == 0
    assert list(pd.read_csv(run_dir / "progress.csv")["Epoch"]) == [0]
    assert (dataset_json.stat().st_mtime_ns, dataset_json.read_bytes()) == before
