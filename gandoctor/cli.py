"""The gandoctor command: analyze | gate | rules | explain | demo.

Exit codes: 0 healthy (or success), 1 a failing finding (gate) / unhealthy (analyze --strict-exit),
2 unreadable input or usage error, with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .analysis import analyze
from .config import load_config
from .errors import GanDoctorError
from .rules import MODES

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with one line, like gate's input errors
        self.print_usage(sys.stderr)
        print(f"gandoctor: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _reflow(text: str) -> str:
    """Rule texts are wrapped in their TOML files; join the lines of each paragraph so the
    console wraps them at its own width."""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


LOG_FORMATS = ("auto", "runlog", "tensorboard", "csv", "jsonl", "wandb", "console")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", nargs="+",
        help="run directories or log files: a gandoctor run, TensorBoard event files or run folders, CSV/TSV, JSON Lines, "
        "a W&B export, a console log; several (runs/*) give a summary table",
    )
    p.add_argument("--config", help="a TOML config file (default: [tool.gandoctor] of the nearest pyproject.toml)")
    p.add_argument("--rules", action="append", default=[], metavar="DIR", help="an extra folder of rule files (repeatable)")
    p.add_argument("--uses", default="", metavar="FLAGS", help="comma-separated techniques the run uses, e.g. gradient_penalty,label_smoothing")
    _read_options(p)


def _read_options(p: argparse.ArgumentParser) -> None:
    """How foreign logs are read (issue 10): format, names, step column, grid tiles, progress."""
    p.add_argument("--format", choices=LOG_FORMATS, default="auto", help="the log format (default: auto-detect)")
    p.add_argument("--map", action="append", default=[], metavar="SIGNAL=NAME", help="read SIGNAL from the log's NAME, e.g. loss.d=errD (repeatable)")
    p.add_argument("--step", metavar="COLUMN", help="the column/key holding the step, overriding detection")
    p.add_argument("--grid-tile", metavar="HxW", help="tile size of logged sample grids when it cannot be inferred, e.g. 64x64")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no reader warnings on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gandoctor", description="Diagnose GAN training runs.")
    parser.add_argument("--version", action="version", version=f"gandoctor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("analyze", help="diagnose a saved run and print the report")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p = sub.add_parser("gate", help="CI gate: exit 0 healthy, 1 failing finding, 2 unreadable input")
    _common(p)
    p.add_argument("--fail-on", default="any", metavar="any|MODE[,MODE...]", help="which modes fail the gate (default: any)")
    p = sub.add_parser("rules", help="list the rules")
    p.add_argument("--config")
    p.add_argument("--rules", action="append", default=[], metavar="DIR")
    p = sub.add_parser("explain", help="show one rule in full: what, why, example, conditions, remedies")
    p.add_argument("code", help="a rule code (GD101) or name")
    p.add_argument("--config")
    p.add_argument("--rules", action="append", default=[], metavar="DIR")
    p = sub.add_parser("demo", help="train a tiny GAN on CPU with gandoctor attached and print its diagnosis")
    p.add_argument("--scenario", choices=["healthy", "collapse", "unbalanced", "all"], default="all")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--log-dir", default="runs/demo")
    return parser


PROGRESS_MIN_BYTES = 20 << 20


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .readers import ReadOptions, parse_mapping, parse_tile

    return ReadOptions(
        mapping=parse_mapping(args.map), step=args.step, grid_tile=parse_tile(args.grid_tile) if args.grid_tile else None
    )


def _report(args: argparse.Namespace, path: str | Path | None = None):  # type: ignore[no-untyped-def]
    path = args.path[0] if path is None else path
    config = load_config(args.config)
    uses = [u.strip() for u in args.uses.split(",") if u.strip()]
    kwargs = {"config": config, "rules_dirs": args.rules, "uses": uses, "format": args.format, "options": _options(args)}
    err = Console(stderr=True)
    if args.quiet or not err.is_terminal or _size(Path(path)) < PROGRESS_MIN_BYTES:
        return analyze(path, **kwargs)
    # Large logs take seconds to read: show progress on stderr (stdout stays clean for --json).
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress("reading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("read", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return analyze(path, progress=update, **kwargs)


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.name.startswith("gandoctor.jsonl") or "tfevents" in p.name)
        return path.stat().st_size
    except OSError:
        return 0


def _warn(err: Console, args: argparse.Namespace, report) -> None:  # type: ignore[no-untyped-def]
    if not args.quiet:
        for w in report.warnings:
            err.print(f"gandoctor: warning: {w}", markup=False, highlight=False, soft_wrap=True)


def _run_many(args: argparse.Namespace, one, out: Console, err: Console) -> int:  # type: ignore[no-untyped-def]
    """Run ``one(report, path) -> exit code`` for each run named on the command line (a parent
    folder of TensorBoard runs stands for its runs); for more than one run, end with a summary
    table. Returns the worst exit code. An unreadable run is reported and the others still run."""
    from .readers import expand_runs

    paths = expand_runs(args.path)
    rows: list[tuple[str, str, str]] = []
    worst = EXIT_HEALTHY
    json_runs: list[dict] = []
    for path in paths:
        try:
            report = _report(args, path)
        except GanDoctorError as exc:
            err.print(f"gandoctor: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            rows.append((str(path), "unreadable", ""))
            json_runs.append({"path": str(path), "error": str(exc)})
            worst = max(worst, EXIT_ERROR)
            continue
        if len(paths) > 1 and not getattr(args, "json", False) and args.command == "analyze":
            out.rule(escape(str(path)))
        code = one(report, path)
        json_runs.append({"path": str(path), "report": report.to_dict()})
        rows.append((str(path), report.verdict, ", ".join(report.modes)))
        worst = max(worst, code)
    if getattr(args, "json", False):
        print(json.dumps(json_runs[0].get("report", json_runs[0]) if len(paths) == 1 else {"runs": json_runs}, indent=2))
    if len(paths) > 1 and not getattr(args, "json", False):
        table = Table("run", "verdict", "modes", box=None, pad_edge=False)
        for row in rows:
            table.add_row(*(escape(c) for c in row))
        out.print(table)
    return worst


def _parse_fail_on(value: str) -> set[str]:
    if value.strip() == "any":
        return set(MODES)
    modes = {m.strip() for m in value.split(",") if m.strip()}
    unknown = modes - set(MODES)
    if unknown or not modes:
        raise GanDoctorError(f"--fail-on: unknown mode(s) {', '.join(sorted(unknown)) or '(none)'}; expected 'any' or a comma list of {', '.join(MODES)}")
    return modes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        if args.command == "analyze":

            def analyze_one(report, path) -> int:  # type: ignore[no-untyped-def]
                if args.json:
                    _warn(err, args, report)  # the text report shows them itself
                else:
                    out.print(report)
                return EXIT_HEALTHY

            return _run_many(args, analyze_one, out, err)
        if args.command == "gate":
            fail_on = _parse_fail_on(args.fail_on)

            def gate_one(report, path) -> int:  # type: ignore[no-untyped-def]
                _warn(err, args, report)
                name = f" {path}:" if len(args.path) > 1 or Path(path) != Path(args.path[0]) else ""
                failing = [f for f in report.findings if f.mode in fail_on]
                if failing:
                    worst = ", ".join(f"{f.mode} ({f.rule}, onset step {f.onset_step}, confidence {f.confidence:.2f})" for f in failing)
                    print(f"gandoctor gate:{name} FAIL — {worst}")
                    return EXIT_UNHEALTHY
                others = f"; not gating on {', '.join(report.modes)}" if report.findings else ""
                print(f"gandoctor gate:{name} PASS — healthy for {args.fail_on} (steps {report.first_step}..{report.last_step}, {report.rules_checked} rules checked){others}")
                return EXIT_HEALTHY

            return _run_many(args, gate_one, out, err)
        if args.command == "rules":
            rules = load_config(args.config).ruleset(tuple(Path(d) for d in args.rules))
            # Two columns, the summary under the name: four side by side left the summary a few
            # characters wide on an 80-column terminal.
            table = Table("code", "rule · mode / summary", box=None, pad_edge=False, show_lines=False)
            table.columns[0].no_wrap = True
            table.columns[0].style = "bold"
            for i, rule in enumerate(rules.rules):
                if i:
                    table.add_row("", "")
                table.add_row(rule.code, f"[bold]{escape(rule.name)}[/bold] · {escape(rule.mode)}\n{escape(rule.summary)}")
            out.print(table)
            return EXIT_HEALTHY
        if args.command == "explain":
            rules = load_config(args.config).ruleset(tuple(Path(d) for d in args.rules))
            match = [r for r in rules.rules if args.code in (r.code, r.name)]
            if not match:
                raise GanDoctorError(f"no rule {args.code!r}; see 'gandoctor rules'")
            rule = match[0]
            out.print(f"[bold]{rule.code} {rule.name}[/bold] → {rule.mode}")
            out.print(rule.summary, markup=False)
            out.print("\n[bold]why[/bold]")
            out.print(_reflow(rule.why), markup=False)
            if rule.example:
                out.print("\n[bold]example[/bold]")
                out.print(rule.example, markup=False)
            out.print(f"\n[bold]fires when[/bold] ({rule.match} of; after {rule.warmup_steps} warm-up steps, holding for {rule.persist_steps} steps)")
            for c in rule.conditions:
                out.print(f"  {c.label()} {c.op} {c.threshold:g}" + (" (optional)" if c.optional else ""), markup=False)
            for c in rule.corroborate:
                out.print(f"  corroborated by {c.label()} {c.op} {c.threshold:g}", markup=False)
            out.print("\n[bold]remedies[/bold]")
            for ref in rule.remedies:
                r = rules.remedies[ref.id]
                out.print(f"  - {r.title}: {r.action}\n    source: {r.source}, section “{r.section}”", markup=False)
            out.print(f"\n[dim]{rule.source_file}[/dim]")
            return EXIT_HEALTHY
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.scenario, args.steps, args.log_dir, out)
    except GanDoctorError as exc:
        err.print(f"gandoctor: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
