"""gandoctor analyze / gate on the logs users already have: several runs per call, a parent
folder of TensorBoard runs, --format / --map / --step, reader warnings on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gandoctor.cli import EXIT_ERROR, EXIT_HEALTHY, EXIT_UNHEALTHY, main


def nan_csv(path: Path) -> Path:
    # GD501 catches a loss series that turns NaN: an unhealthy run without rule tuning in play.
    # The losses move with their batches before the NaN (frozen ones are GD407's vanishing gradients).
    noise = np.random.default_rng(1).normal(0, 0.02, (300, 2))
    rows = [f"{s},{'nan' if s >= 150 else 0.7 + noise[s, 0]},{'nan' if s >= 150 else 1.2 + noise[s, 1]}" for s in range(300)]
    path.write_text("step,errD,errG\n" + "\n".join(rows) + "\n")
    return path


def ok_csv(path: Path) -> Path:
    noise = np.random.default_rng(0).normal(0, 0.02, (300, 2))  # losses that move with their batches (frozen ones are GD407's)
    path.write_text("step,errD,errG\n" + "".join(f"{s},{0.69 + a:.4f},{0.70 + b:.4f}\n" for s, (a, b) in enumerate(noise)))
    return path


def test_gate_over_several_runs_prints_a_table_and_exits_with_the_worst(tmp_path, capsys):
    a, b = ok_csv(tmp_path / "a.csv"), nan_csv(tmp_path / "b.csv")
    bad = tmp_path / "c.csv"
    bad.write_text("step,fid\n0,1\n")
    assert main(["gate", str(a), str(b)]) == EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert f"PASS — {a}" in out and f"FAIL — {b}" in out
    assert "verdict" in out and "unhealthy" in out and "healthy" in out
    assert main(["gate", str(a), str(b), str(bad)]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert "unreadable" in captured.out and f"{bad}: no name in this log maps" in captured.err
    assert main(["gate", str(a), str(a)]) == EXIT_HEALTHY


def test_analyze_json_over_several_runs(tmp_path, capsys):
    a, b = ok_csv(tmp_path / "a.csv"), nan_csv(tmp_path / "b.csv")
    assert main(["analyze", str(a), str(b), "--json"]) == EXIT_HEALTHY
    doc = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in doc["runs"]] == [str(a), str(b)]
    assert [r["report"]["verdict"] for r in doc["runs"]] == ["healthy", "unhealthy"]
    # one path keeps the single-report document
    assert main(["analyze", str(a), "--json"]) == EXIT_HEALTHY
    assert json.loads(capsys.readouterr().out)["verdict"] == "healthy"


def test_parent_folder_of_tensorboard_runs_is_each_run(tmp_path, capsys):
    SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter
    noise = np.random.default_rng(2).normal(0, 0.02, (300, 2))  # losses that move (frozen ones are GD407's)
    for name, nan_from in (("good", 10**9), ("bad", 150)):
        w = SummaryWriter(str(tmp_path / "runs" / name))
        for s in range(300):
            w.add_scalar("loss/D", float("nan") if s >= nan_from else 0.7 + noise[s, 0], s)
            w.add_scalar("loss/G", float("nan") if s >= nan_from else 1.2 + noise[s, 1], s)
        w.close()
    assert main(["gate", str(tmp_path / "runs")]) == EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert f"FAIL — {tmp_path / 'runs' / 'bad'}" in out and f"PASS — {tmp_path / 'runs' / 'good'}" in out


def test_reader_warnings_go_to_stderr(tmp_path, capsys):
    path = ok_csv(tmp_path / "a.csv")
    with path.open("a") as fh:
        fh.write("300,oops,0.7\n")
    for quiet in ([], ["--quiet"]):  # the gate always says why it read less than the file holds
        assert main(["gate", str(path), *quiet]) == EXIT_HEALTHY
        err = capsys.readouterr().err
        assert f"gandoctor: warning: {path}: line 302: column 'errD': expected a number, got 'oops'" in err
    assert main(["analyze", str(path), "--json"]) == EXIT_HEALTHY
    captured = capsys.readouterr()
    assert "line 302" in captured.err and any("line 302" in w for w in json.loads(captured.out)["warnings"])
    assert main(["analyze", str(path), "--json", "--quiet"]) == EXIT_HEALTHY
    assert capsys.readouterr().err == ""


def test_map_step_and_format_options(tmp_path, capsys):
    path = tmp_path / "log.txt"
    path.write_text("it,critic,gen\n" + "".join(f"{s},{'nan' if s > 150 else 0.5},0.6\n" for s in range(300)))
    assert main(["gate", str(path)]) == EXIT_ERROR  # a .txt of a table: not a console log
    capsys.readouterr()
    assert main(["gate", str(path), "--format", "csv"]) == EXIT_ERROR  # nothing maps
    assert "found: 'critic', 'gen'" in capsys.readouterr().err
    assert main(["gate", str(path), "--format", "csv", "--map", "loss.d=critic", "--map", "loss.g=gen"]) == EXIT_UNHEALTHY
    assert main(["gate", str(path), "--format", "csv", "--map", "loss.d=critic", "--step", "nope"]) == EXIT_ERROR
    assert "--step 'nope': no such column" in capsys.readouterr().err
    assert main(["gate", str(path), "--format", "csv", "--map", "loss.q=critic"]) == EXIT_ERROR
    assert "unknown signal 'loss.q'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["64", "0x3"])
def test_bad_grid_tile_is_a_usage_error(tmp_path, capsys, value):
    assert main(["analyze", str(ok_csv(tmp_path / "a.csv")), "--grid-tile", value]) == EXIT_ERROR
    assert "--grid-tile" in capsys.readouterr().err


CORPUS_C011 = Path(__file__).resolve().parent.parent / "fixtures" / "corpus" / "c011-d_strong-grid-mlp" / "scalars.csv.gz"


@pytest.mark.skipif(not CORPUS_C011.exists(), reason="fixtures/corpus is not in this checkout")
def test_gate_states_a_failing_finding_s_caveat(capsys):
    # Collapse inferred from a recorded run's CSV (GD305): the gate line says what it rests on.
    assert main(["gate", str(CORPUS_C011), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "mode_collapse (GD305" in out and "caveat: Inferred from a winning D" in out
    dominance = out.split("discriminator_dominance (")[1].split(")")[0]
    assert dominance.startswith("GD10") and "caveat" not in dominance  # measured on D's outputs: no caveat


def test_a_log_of_one_line_per_epoch_is_judged_in_iterations_when_told_what_a_line_stands_for(capsys):
    # A public conditional DCGAN at lr 5, printing one line of averages per epoch of 29 batches:
    # 20 records read as 20 steps are too short for every rule that could see D's loss pinned at
    # BCELoss's clamp; told that each stands for 29 iterations, they are judged as the 580 they were.
    log = Path(__file__).resolve().parent.parent / "fixtures" / "public" / "znxlwm_cdcgan_lr5.console.log"
    assert main(["gate", str(log)]) == EXIT_HEALTHY
    assert "--record-steps" in capsys.readouterr().err
    assert main(["gate", str(log), "--record-steps", "29", "--require", "vanishing_gradients"]) == EXIT_UNHEALTHY
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(log), "--record-steps", "0"])
    assert info.value.code == EXIT_ERROR and "1 or more" in capsys.readouterr().err


def test_g_s_loss_held_at_bce_s_clamp_is_vanishing_gradients_on_a_public_script_s_console_log():
    # diegoalejogm/gans' vanilla GAN (nn.BCELoss), console logs over three lines a record: with D's
    # rate x10 G's loss sat at the clamp (100.0000) and the live run found G's gradient gone; as
    # published, it never reached the clamp.
    from gandoctor import analyze

    public = Path(__file__).resolve().parent.parent / "fixtures" / "public"
    failing = analyze(public / "diegoalejogm_vgan_dlr10.console.log.gz")
    vanishing = [f for f in failing.findings if f.mode == "vanishing_gradients"]
    assert vanishing and "GD406" in (vanishing[0].rule, *vanishing[0].also_fired)
    assert failing.last_step == 2998  # read in batches (positions on lines of their own), not in printed lines
    published = analyze(public / "diegoalejogm_vgan_healthy.console.log.gz")
    assert "vanishing_gradients" not in published.modes and published.last_step == 2998
