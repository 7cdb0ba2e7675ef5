"""gandoctor.readers.wandb: W&B run-history exports (API history as CSV / JSON, UI chart CSV)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from gandoctor import LogFormatError, read_run

ROWS = [
    {"_step": s, "_runtime": 1.5 * s, "_timestamp": 1.7e9 + s, "train/loss_D": 0.7 - 0.001 * s, "train/loss_G": 1.2 + 0.002 * s,
     "train/D(x)": 0.6, "epoch": s // 10}
    for s in range(0, 50, 2)
]


def write_history_csv(path: Path, rows=ROWS) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_api_history_csv_uses_step_and_strips_train_prefix(tmp_path):
    data = read_run(write_history_csv(tmp_path / "history.csv"))
    assert data.format == "wandb" and data.warnings == ()
    assert dict(data.mapped) == {"loss.d": "train/loss_D", "loss.g": "train/loss_G", "d_prob.real": "train/D(x)"}
    assert data.signals.get("loss.d").steps.tolist() == list(range(0, 50, 2))
    assert not any(n.startswith("user._") or "runtime" in n or "timestamp" in n for n in data.signals.names())


@pytest.mark.parametrize("layout", ["jsonl", "array"])
def test_api_history_json(tmp_path, layout):
    rows = [dict(r, media={"_type": "image-file", "path": "x.png"}) for r in ROWS]
    rows[3]["train/loss_G"] = float("nan")
    path = tmp_path / ("history.jsonl" if layout == "jsonl" else "history.json")
    if layout == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows, indent=1))  # NaN as W&B's pandas export writes it
    data = read_run(path)
    assert data.format == "wandb"
    g = data.signals.get("loss.g")
    assert g.steps.tolist() == list(range(0, 50, 2)) and g.nonfinite.tolist()[3] == 1


def test_ui_chart_export_skips_min_max_and_run_prefix(tmp_path):
    path = tmp_path / "chart.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Step", "dcgan-7 - train/loss_D", "dcgan-7 - train/loss_D__MIN", "dcgan-7 - train/loss_D__MAX"])
        for s in range(10):
            w.writerow([s * 100, 0.5 + s / 100, 0.0, 9.0])
    data = read_run(path)
    assert data.format == "wandb" and data.signals.names() == ["loss.d"]
    assert data.mapped["loss.d"] == "dcgan-7 - train/loss_D"
    assert data.signals.get("loss.d").steps.tolist() == [s * 100 for s in range(10)]
    assert max(data.signals.get("loss.d").values) < 1.0  # not the __MAX column


def test_sparse_history_rows_keep_what_each_row_has(tmp_path):
    rows = [{"_step": 0, "train/loss_D": 1.0, "val/fid": ""}, {"_step": 1, "train/loss_D": "", "val/fid": 90.0}, {"_step": 2, "train/loss_D": 0.8, "val/fid": ""}]
    data = read_run(write_history_csv(tmp_path / "h.csv", rows))
    assert data.signals.get("loss.d").steps.tolist() == [0, 2]
    assert data.signals.get("user.val_fid").steps.tolist() == [1]
    assert data.warnings == ()


def test_truncated_json_array_keeps_whole_records_and_warns(tmp_path):
    path = tmp_path / "history.json"
    text = json.dumps(ROWS)
    path.write_text(text[: len(text) // 2])
    data = read_run(path)
    assert 0 < data.records < len(ROWS)
    assert any("incomplete last record" in w for w in data.warnings)


def test_export_without_known_metrics_names_what_it_found(tmp_path):
    rows = [{"_step": s, "val/fid": 100 - s} for s in range(5)]
    with pytest.raises(LogFormatError, match="found: 'val/fid'"):
        read_run(write_history_csv(tmp_path / "h.csv", rows))


def test_plain_csv_is_not_taken_for_wandb(tmp_path):
    path = tmp_path / "losses.csv"
    path.write_text("step,loss_D\n0,1\n")
    assert read_run(path).format == "csv"
    assert math.isclose(read_run(path, format="wandb").signals.get("loss.d").values[0], 1.0)
