"""Sample grids read from run logs (the doctor's fixed-latent grids) and TensorBoard images."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from gandoctor import read_run
from gandoctor.readers.grids import GridKeeper, SampleGrid, from_runlog

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"
# A recorded 2-D run whose log holds nine grids (the first five checks, steps 0-400, then 1000, ..., 4000).
POINTS = CORPUS / "c235-partial_collapse-random2d-mlp"


def _raw_grids(run: Path) -> list[dict]:
    with gzip.open(run / "gandoctor.jsonl.gz", "rt") as fh:
        return [r for r in map(json.loads, fh) if r.get("level") == "samples"]


def test_the_run_logs_grids_are_read_with_their_values():
    data = read_run(POINTS)
    raw = _raw_grids(POINTS)
    assert [g.step for g in data.samples] == [r["step"] for r in raw] == [0, 50, 100, 150, 200, *range(500, 5000, 500)]
    last, record = data.samples[-1], raw[-1]["samples"]
    assert last.kind == "vectors" and last.pixels.shape == (16, 2) and last.source == "runlog"
    values = last.values()
    assert values.min() == pytest.approx(record["lo"]) and values.max() == pytest.approx(record["hi"])
    assert not data.warnings


def test_a_recorded_image_run_keeps_every_grid(tmp_path):
    from ._digits import GRID_EVERY, record

    record(tmp_path, steps=120)
    grids = read_run(tmp_path).samples
    assert [g.step for g in grids] == list(range(0, 120, GRID_EVERY))
    assert all(g.kind == "images" and g.pixels.shape == (16, 1, 8, 8) for g in grids)


def _log(tmp_path: Path, lines: list[dict]) -> Path:
    header = {"type": "header", "schema": "gandoctor.runlog", "version": 1, "capacity": 64, "context": {}}
    (tmp_path / "gandoctor.jsonl").write_text("\n".join(json.dumps(r) for r in [header, *lines]) + "\n")
    return tmp_path


def _grid(step: int, q: np.ndarray, **over) -> dict:
    samples = {"shape": list(q.shape), "lo": -1.0, "hi": 1.0, "uint8": base64.b64encode(q.tobytes()).decode()} | over
    return {"type": "event", "step": step, "level": "samples", "message": "", "samples": samples}


def test_damaged_grids_are_skipped_with_a_warning(tmp_path):
    q = np.arange(32, dtype=np.uint8).reshape(16, 2)
    lines = [
        {"type": "step", "step": 0, "s": {"loss.d": 0.7}},
        _grid(0, q),
        _grid(1, q, shape=[16, 3]),  # bytes do not match the shape
        _grid(2, q, uint8="not base64!"),
        _grid(3, q, hi="nan"),
        _grid(4, q, shape=[1 << 13, 1 << 13]),  # far larger than a grid
        {"type": "event", "step": "x", "level": "samples", "samples": {}},
        {"type": "step", "step": 5, "s": {"loss.d": 0.6}},
    ]
    data = read_run(_log(tmp_path, lines))
    assert [g.step for g in data.samples] == [0]
    assert np.array_equal(data.samples[0].pixels, q)
    assert len(data.warnings) == 5 and all("samples event" in w for w in data.warnings)


def test_a_restarted_run_keeps_only_the_new_runs_grids(tmp_path):
    q = np.zeros((16, 2), dtype=np.uint8)
    header = {"type": "header", "schema": "gandoctor.runlog", "version": 1, "capacity": 64, "context": {}}
    lines = [{"type": "step", "step": s, "s": {"loss.d": 0.7}} for s in range(3)] + [_grid(0, q), _grid(2, q), header, _grid(0, q + 1)]
    lines += [{"type": "step", "step": s, "s": {"loss.d": 0.5}} for s in range(2)]
    grids = read_run(_log(tmp_path, lines)).samples
    assert [(g.step, int(g.pixels[0, 0])) for g in grids] == [(0, 1)]


def test_the_keeper_thins_a_long_run_evenly_and_keeps_the_newest():
    keeper = GridKeeper(limit=8)
    for step in range(0, 1001, 10):
        keeper.offer(SampleGrid(step, "runlog", np.zeros((2, 2), dtype=np.uint8)))
    steps = [g.step for g in keeper.grids()]
    assert len(steps) <= 9 and steps[0] == 0 and steps[-1] == 1000
    gaps = np.diff(steps[:-1])
    assert (gaps == gaps[0]).all()  # evenly spaced, the newest added at the end


def test_from_runlog_names_what_is_wrong():
    assert from_runlog(0, []) == "'samples' is not an object"
    assert "2 to 4 positive integers" in str(from_runlog(0, {"shape": [16]}))


def test_tensorboard_image_grids_are_kept_as_png(tmp_path):
    writer_mod = pytest.importorskip("torch.utils.tensorboard", reason="writing event files needs the tensorboard package")
    make_grid = pytest.importorskip("torchvision.utils").make_grid
    import torch

    writer = writer_mod.SummaryWriter(str(tmp_path))
    for step in (0, 100, 200):
        writer.add_scalar("loss_d", 0.5, step)
        writer.add_image("samples", make_grid(torch.rand(16, 3, 12, 12), nrow=4), step)
        writer.add_image("real_images", make_grid(torch.rand(16, 3, 12, 12), nrow=4), step)
    writer.close()
    grids = read_run(tmp_path).samples
    assert [(g.step, g.kind, g.source) for g in grids] == [(0, "png", "samples"), (100, "png", "samples"), (200, "png", "samples")]
    assert grids[0].png.startswith(b"\x89PNG")
