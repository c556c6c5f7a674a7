"""Protocol clips: an MP4 beside the GIF when an encoder is importable (else one line saying so), and the
method's name in every panel's title."""

from pathlib import Path

import numpy as np
import pytest

from rlkit.evaluation import protocol_video as pv


def _frames(n=6, h=48, w=64):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_without_an_encoder_the_gif_only_and_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pv, "mp4_encoder", lambda: None)
    paths = pv.write_clip(_frames(), tmp_path / "clip.gif")
    assert paths == [tmp_path / "clip.gif"] and (tmp_path / "clip.gif").exists()
    assert not (tmp_path / "clip.mp4").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MP4" in err[0] and "imageio-ffmpeg" in err[0]


def test_with_an_encoder_an_mp4_beside_the_gif(tmp_path, monkeypatch):
    written = []

    def fake_mp4(frames, path, fps, encoder):
        written.append((len(frames), Path(path), encoder))
        Path(path).write_bytes(b"mp4")
        return Path(path)

    monkeypatch.setattr(pv, "mp4_encoder", lambda: "pyav")
    monkeypatch.setattr(pv, "write_mp4", fake_mp4)
    paths = pv.write_clip(_frames(), tmp_path / "clip.gif")
    assert paths == [tmp_path / "clip.gif", tmp_path / "clip.mp4"]
    assert written == [(6, tmp_path / "clip.mp4", "pyav")]


@pytest.mark.skipif(pv.mp4_encoder() is None, reason="no MP4 encoder (imageio-ffmpeg or av) importable here")
def test_the_real_encoder_writes_a_playable_mp4(tmp_path):
    path = pv.write_mp4(_frames(h=47, w=63), tmp_path / "clip.mp4", 10, pv.mp4_encoder())  # odd sizes padded
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 100


def test_the_method_name_is_in_each_panels_title():
    lines = pv.panel_title("CORRO", "offline", "evaluation 1", 1.5)
    assert lines[0] == "CORRO: offline" and lines[1:] == ["evaluation 1", "return 1.50"]
    frame = np.full((64, 96, 3), 128, np.uint8)
    assert (pv._label(frame, lines) != frame).any()


def test_method_name_of_a_run_is_its_algo_type():
    class Run:
        config = {"algo_type": "FOCAL", "env_name": "point-robot"}

    assert pv.method_name(Run()) == "FOCAL"
    Run.config = {"algo_type": "CSRO", "util_params": {"exp_name": "csro-ablation"}}
    assert pv.method_name(Run()) == "CSRO (csro-ablation)"  # an experiment named otherwise says so
