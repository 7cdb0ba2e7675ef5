"""WandbAlerts: findings replayed from a real recorded run become alerts and logged health.

With wandb installed, a real offline run is written and its transaction log (``run-*.wandb``)
read back; without it, a stand-in run object records the calls (the contract the sink relies on)."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from gandoctor.integrations import IntegrationError
from gandoctor.integrations.wandb import WandbAlerts

from ._checks import feed, replay


@pytest.fixture(scope="module")
def checks():
    return replay()


class StandInRun:
    """Records the calls a W&B run receives."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.logged: list[tuple[dict, dict]] = []

    def alert(self, **kwargs) -> None:
        self.alerts.append(kwargs)

    def log(self, data, **kwargs) -> None:
        self.logged.append((dict(data), kwargs))


def test_each_new_finding_is_one_alert_and_each_check_logs_health(checks):
    run = StandInRun()
    feed(WandbAlerts(run, level="ERROR"), checks)
    found = [(c.step, f) for c in checks for f in c.new]
    assert len(run.alerts) == len(found) >= 3
    for alert, (step, f) in zip(run.alerts, found):
        assert alert["title"] == f"gandoctor: {f.mode} from step {f.onset_step}" and len(alert["title"]) < 64
        assert str(getattr(alert["level"], "value", alert["level"])) == "ERROR"
        assert f"found at training step {step}" in alert["text"] and f.rule in alert["text"]
        assert f.remedies[0].title in alert["text"] and f.remedies[0].source in alert["text"]
    assert [kw for _, kw in run.logged] == [{"step": c.step} for c in checks]
    first, last = run.logged[0][0], run.logged[-1][0]
    assert first == {"gandoctor/health/exploding_gradients": 1.0}  # the only mode judged at step 100
    assert last["gandoctor/health/discriminator_dominance"] == 0.0 and last["gandoctor/health/generator_dominance"] == 1.0
    assert 0 < last["gandoctor/confidence/mode_collapse"] <= 1


def test_log_step_false_attaches_health_to_the_runs_own_step(checks):
    run = StandInRun()
    WandbAlerts(run, log_step=False).on_check(checks[-1].report, checks[-1].step)
    assert run.logged[0][1] == {"commit": False}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="expected one of INFO, WARN, ERROR, got 'LOUD'"):
        WandbAlerts(StandInRun(), level="LOUD")
    with pytest.raises(IntegrationError, match="expected a W&B run with .alert and .log, got object"):
        WandbAlerts(object())


def test_without_wandb_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'gandoctor\[wandb\]'"):
        WandbAlerts()
    WandbAlerts(StandInRun())  # a run passed in needs no wandb import


# -- a real offline W&B run -----------------------------------------------------------------
def _records(path: Path) -> list[bytes]:
    """The records of a W&B transaction log (LevelDB log format: 32 KiB blocks of CRC, length, type)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, out, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # zero padding at a block's end
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind in (2, 3):
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return out


def test_a_real_offline_run_receives_the_alerts_and_the_health(tmp_path, monkeypatch, checks):
    wandb = pytest.importorskip("wandb", reason="wandb is not installed: pip install 'gandoctor[wandb]'")
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason="this wandb keeps no protobuf records")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run = wandb.init(mode="offline", dir=str(tmp_path), project="gandoctor-test")
    try:
        feed(WandbAlerts(), checks)  # run=None: the active run
    finally:
        run.finish()
    alerts, history = [], []
    for raw in _records(next(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "alert":
            alerts.append(record.alert)
        elif kind == "history":
            history.append({"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item})
    found = [f for c in checks for f in c.new]
    assert [a.title for a in alerts] == [f"gandoctor: {f.mode} from step {f.onset_step}" for f in found]
    assert all(a.level == "WARN" for a in alerts) and found[0].rule in alerts[0].text
    steps = [h["_step"] for h in history]
    assert steps == [c.step for c in checks]
    assert history[-1]["gandoctor/health/mode_collapse"] == 0 and history[-1]["gandoctor/health/vanishing_gradients"] == 1
