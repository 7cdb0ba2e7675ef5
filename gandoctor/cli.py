"""The gandoctor command: analyze | gate | rules | explain | compare | demo.

Exit codes: 0 healthy (or success), 1 a failing finding (gate) / unhealthy (analyze --strict-exit) /
a new failure (compare), 2 unreadable input or usage error, with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .compare import compare_runs
from .config import Config, load_config
from .diagnose import analyze_run
from .errors import GanDoctorError
from .findings import Finding
from .remedies import Remedy, alias_table, load_mode_notes, remedies_for_mode
from .reporters._modes import far_from_data_note
from .reporters.gate import judge
from .rules import MODES, Condition, Rule, RuleSet
from .vocabulary import parse_uses, resolve, unknown_uses

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 with one line, like gate's input errors
        self.print_usage(sys.stderr)
        print(f"gandoctor: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _reflow(text: str) -> str:
    """Rule texts are wrapped in their TOML files; join the lines of each paragraph so the
    console wraps them at its own width."""
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


LOG_FORMATS = ("auto", "runlog", "tensorboard", "wandb", "csv", "jsonl", "metricfiles", "console")
#: What a user may take --format for (the report's format), and the option that gives it.
_REPORT_FORMATS = {"json": "--json", "html": "--html FILE", "junit": "gate --junit FILE", "markdown": "gate --markdown FILE", "md": "gate --markdown FILE"}


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of iterations, 1 or more; got {value!r}")
    return number


def _log_format(value: str) -> str:
    """--format's value: a log format, or the way to the report format the user meant."""
    if value in LOG_FORMATS:
        return value
    if value.lower() in _REPORT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"'{value}' is a report format: --format names the format of the log read ({', '.join(LOG_FORMATS)}); "
            f"for a {value} report pass {_REPORT_FORMATS[value.lower()]}"
        )
    raise argparse.ArgumentTypeError(f"invalid choice: '{value}' (choose from {', '.join(LOG_FORMATS)})")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", nargs="+",
        help="run directories or log files: a gandoctor run, TensorBoard event files or run folders, CSV/TSV, JSON Lines, "
        "a W&B export, a console log; several (runs/*) give a summary table",
    )
    p.add_argument("--config", help="a TOML config file (default: [tool.gandoctor] of the nearest pyproject.toml)")
    p.add_argument("--rules", action="append", default=[], metavar="DIR", help="an extra folder of rule files (repeatable)")
    p.add_argument(
        "--uses", default="", metavar="NAME[=VALUE],...",
        help="techniques the run uses that the probes cannot see, with their setting where it matters, e.g. gradient_penalty=10,label_smoothing=0.9",
    )
    _read_options(p)


def _read_options(p: argparse.ArgumentParser) -> None:
    """How foreign logs are read (issue 10): format, names, step column, grid tiles, progress."""
    p.add_argument("--format", type=_log_format, default="auto", metavar="{" + ",".join(LOG_FORMATS) + "}",
                   help="the format of the log read (default: auto-detect); the report's: --json, --html")
    p.add_argument("--map", action="append", default=[], metavar="SIGNAL=NAME", help="read SIGNAL from the log's NAME, e.g. loss.d=errD (repeatable)")
    p.add_argument("--step", metavar="COLUMN", help="the column/key holding the step, overriding detection")
    p.add_argument("--grid-tile", metavar="HxW", help="tile size of logged sample grids when it cannot be inferred, e.g. 64x64")
    p.add_argument("--record-steps", type=_positive_int, default=1, metavar="N",
                   help="for a log whose lines give no step or iteration (one line per epoch): the iterations each line stands for")
    p.add_argument("--quiet", action="store_true", help="no progress bar (and, for analyze --json, no reader warnings on stderr)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gandoctor", description="Diagnose GAN training runs.")
    parser.add_argument("--version", action="version", version=f"gandoctor {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("analyze", help="diagnose a saved run and print the report")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with plots (needs gandoctor[html])")
    p = sub.add_parser("gate", help="CI gate: exit 0 healthy, 1 failing finding, 2 nothing could be judged")
    _common(p)
    p.add_argument(
        "--fail-on", default="any", metavar="any|MODE|RULE[,...]",
        help="which modes or rule codes fail the gate (default: any mode)",
    )
    p.add_argument(
        "--require-checked", default="", metavar="MODE[,MODE...]",
        help="fail (exit 1) when one of these modes could not be checked (signals missing, run too short)",
    )
    p.add_argument(
        "--samples-near-data", action="store_true",
        help="fail (exit 1) when G's samples end far from the data (under a tenth near a real sample): a G that learned nothing fails no rule",
    )
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML: one test case per mode (failure, pass, or skipped when not checked)")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown summary (e.g. for $GITHUB_STEP_SUMMARY)")
    p = sub.add_parser("rules", help="list the rules, or check a folder of rules and run their cases")
    p.add_argument("--config")
    p.add_argument("--rules", action="append", default=[], metavar="DIR")
    p.add_argument(
        "--check", metavar="DIR",
        help="validate the rule files in DIR and run the cases in DIR/cases/<CODE>.toml (exit 1 if a case fails)",
    )
    p = sub.add_parser("explain", help="a failure mode, rule or remedy in full: what, why, causes, remedies with sources")
    p.add_argument("code", metavar="MODE|RULE|REMEDY", help="a failure mode (mode_collapse), a rule code in any case (GD301, gd301) or name, or a remedy id")
    p.add_argument("--config")
    p.add_argument("--rules", action="append", default=[], metavar="DIR")
    p = sub.add_parser("compare", help="two runs side by side: findings gone / new / unchanged, per-mode status, key signals; exit 1 on a new failure")
    p.add_argument("before", help="the run before the change (a run directory or log file)")
    p.add_argument("after", help="the run after the change")
    p.add_argument("--config")
    p.add_argument("--rules", action="append", default=[], metavar="DIR")
    p.add_argument("--uses", default="", metavar="NAME[=VALUE],...", help="techniques both runs use that the probes cannot see")
    p.add_argument("--format", type=_log_format, default="auto", metavar="{" + ",".join(LOG_FORMATS) + "}")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p = sub.add_parser("demo", help="train a tiny GAN on CPU with gandoctor attached and print its diagnosis")
    p.add_argument("--scenario", choices=["healthy", "collapse", "unbalanced", "all"], default="all")
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--log-dir", default="runs/demo")
    return parser


PROGRESS_MIN_BYTES = 20 << 20


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .readers import ReadOptions, parse_mapping, parse_tile

    return ReadOptions(
        mapping=parse_mapping(args.map), step=args.step, grid_tile=parse_tile(args.grid_tile) if args.grid_tile else None,
        record_steps=args.record_steps,
    )


def _report(args: argparse.Namespace, path: str | Path | None = None):  # type: ignore[no-untyped-def]
    path = args.path[0] if path is None else path
    config = load_config(args.config)
    uses = _parse_uses(args, config)
    kwargs = {"config": config, "rules_dirs": args.rules, "uses": uses, "format": args.format, "options": _options(args)}
    err = Console(stderr=True)
    if args.quiet or not err.is_terminal or _size(Path(path)) < PROGRESS_MIN_BYTES:
        return analyze_run(path, **kwargs)
    # Large logs take seconds to read: show progress on stderr (stdout stays clean for --json).
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress("reading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("read", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return analyze_run(path, progress=update, **kwargs)


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.name.startswith("gandoctor.jsonl") or "tfevents" in p.name)
        return path.stat().st_size
    except OSError:
        return 0


def _output_path(name: str, path: str | Path, several: bool) -> Path:
    """FILE for one run; FILE with the run's name before the suffix when several runs are gated."""
    target = Path(name)
    if not several:
        return target
    run = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(path).name)
    return target.with_name(f"{target.stem}.{run}{target.suffix}")


def _write_outputs(args: argparse.Namespace, report, data, path: str | Path, several: bool) -> None:  # type: ignore[no-untyped-def]
    writers = []
    if getattr(args, "html", None):
        from .reporters.html import render_html

        writers.append((args.html, lambda: render_html(report, signals=data.signals, samples=getattr(data, "samples", ()))))
    if getattr(args, "junit", None):
        from .reporters.junit import render_junit

        writers.append((args.junit, lambda: render_junit(report)))
    if getattr(args, "markdown", None):
        from .reporters.markdown import render_markdown

        writers.append((args.markdown, lambda: render_markdown(report)))
    for name, render in writers:
        target = _output_path(name, path, several)
        try:
            target.write_text(render(), encoding="utf-8")
        except OSError as exc:
            raise GanDoctorError(f"{target}: cannot write the report: {exc.strerror or exc}") from exc


def _warn(err: Console, report) -> None:  # type: ignore[no-untyped-def]
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
    as_json = getattr(args, "json", False)
    for path in paths:
        try:
            report, data = _report(args, path)
        except GanDoctorError as exc:
            if len(paths) == 1:
                raise
            err.print(f"gandoctor: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            rows.append((str(path), "unreadable", ""))
            json_runs.append({"path": str(path), "error": str(exc)})
            worst = max(worst, EXIT_ERROR)
            continue
        if len(paths) > 1 and not as_json and args.command == "analyze":
            out.rule(escape(str(path)))
        worst = max(worst, one(report, path))
        _write_outputs(args, report, data, path, several=len(paths) > 1)
        json_runs.append({"path": str(path), "report": report.to_dict()})
        far = report.verdict == "healthy" and bool(far_from_data_note(report.samples))
        rows.append((str(path), report.verdict + (" (samples far from the data)" if far else ""), ", ".join(report.modes)))
    if as_json:
        print(json.dumps(json_runs[0]["report"] if len(paths) == 1 else {"runs": json_runs}, indent=2))
    elif len(paths) > 1:
        table = Table(box=None, pad_edge=False)
        # Long paths fold rather than lose their ends (the run's own name is the end); the
        # verdict never wraps, so a narrow terminal still shows it whole on the run's line.
        table.add_column("run", overflow="fold")
        table.add_column("verdict", no_wrap=True)
        table.add_column("modes", overflow="fold")
        for label, (_, verdict, modes) in zip(_run_labels([row[0] for row in rows]), rows):
            table.add_row(escape(label), escape(verdict), escape(modes))
        out.print(table)
    return worst


def _run_labels(paths: list[str]) -> list[str]:
    """The runs' paths relative to the folder they share, so the table shows what tells them
    apart; the full paths head each run's own report above the table."""
    import os

    try:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    except ValueError:  # paths on different drives
        return paths
    labels = [os.path.relpath(os.path.abspath(p), common) for p in paths]
    return labels if len(set(labels)) == len(labels) else paths


def _parse_modes_and_rules(option: str, value: str, rules: RuleSet | None = None) -> tuple[set[str], set[str]]:
    """A comma list of modes and rule codes (any case); ``any`` is every mode."""
    if value.strip() == "any":
        return set(MODES), set()
    items = [v.strip() for v in value.split(",") if v.strip()]
    codes = {r.code.upper(): r.code for r in rules.rules} if rules is not None else {}
    names = {r.name: r.code for r in rules.rules} if rules is not None else {}
    modes, found, unknown = set(), set(), []
    for item in items:
        if item in MODES:
            modes.add(item)
        elif item.upper() in codes:
            found.add(codes[item.upper()])
        elif item in names:
            found.add(names[item])
        else:
            unknown.append(item)
    if unknown or not items:
        raise GanDoctorError(
            f"{option}: unknown mode or rule {', '.join(unknown) or '(none)'}; expected 'any' or a comma list of modes "
            f"({', '.join(MODES)}) or rule codes (see 'gandoctor rules')"
        )
    return modes, found


def _gate(args: argparse.Namespace, out: Console, err: Console) -> int:
    config = load_config(args.config)
    rules = config.ruleset(tuple(Path(d) for d in args.rules))
    modes, codes = _parse_modes_and_rules("--fail-on", args.fail_on, rules)
    required: set[str] = set()
    if args.require_checked.strip():
        required, extra = _parse_modes_and_rules("--require-checked", args.require_checked)
        if extra:
            raise GanDoctorError("--require-checked takes modes only")

    def gate_one(report, path) -> int:  # type: ignore[no-untyped-def]
        _warn(err, report)  # a gate that hides why it read little is no gate
        for a in report.cleared_alerts:  # the verdict is on the end state; say what was raised on the way
            err.print(
                f"gandoctor: note: {a.mode} ({a.rule}) was raised during training at step {a.seen_at} and does not hold at the last step",
                markup=False, highlight=False, soft_wrap=True,
            )
        result = judge(report, modes, codes, sorted(required), require_near_data=args.samples_near_data)
        print(result.line)
        return int(result.exit_code)

    return _run_many(args, gate_one, out, err)


def _check_rules(folder: Path, out: Console) -> int:
    from .rulecases import check_folder
    from .rules import builtin_rules_dir, load_rules

    builtin = folder.resolve() == builtin_rules_dir().resolve()
    rules = load_rules([] if builtin else [folder])  # a project's rules may cite the built-in remedies
    own = [r for r in rules.rules if Path(r.source_file).parent.resolve() == folder.resolve()]
    results = check_folder(folder, rules)
    table = Table("rule", "case", "expected", "got", "", box=None, pad_edge=False)
    for res in results:
        expected = f"fire at {res.case.onset}" if res.case.onset is not None else res.case.expect.value
        table.add_row(res.case.rule, escape(res.case.name), expected, res.got, "ok" if res.passed else "[bold red]FAIL[/bold red]")
    if results:
        out.print(table)
    failed = sum(not r.passed for r in results)
    without = sorted({r.code for r in own} - {res.case.rule for res in results})
    out.print(
        f"{len(own)} rule(s) valid in {folder}; {len(results) - failed} of {len(results)} case(s) passed"
        + (f"; no cases for {', '.join(without)}" if without else ""),
        soft_wrap=True,
    )
    return EXIT_UNHEALTHY if failed else EXIT_HEALTHY


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `gandoctor`: show what it can do
        parser.print_help()
        return EXIT_HEALTHY
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        if args.command == "analyze":

            def analyze_one(report, path) -> int:  # type: ignore[no-untyped-def]
                if not args.json:
                    out.print(report)  # the text report shows the reader warnings itself
                elif not args.quiet:
                    _warn(err, report)
                return EXIT_HEALTHY

            return _run_many(args, analyze_one, out, err)
        if args.command == "gate":
            return _gate(args, out, err)
        if args.command == "rules" and args.check:
            return _check_rules(Path(args.check), out)
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
            return _explain(args, out)
        if args.command == "compare":
            return _compare(args, out, err)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.scenario, args.steps, args.log_dir, out)
    except GanDoctorError as exc:
        err.print(f"gandoctor: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return EXIT_ERROR


# -- uses, explain, compare ------------------------------------------------------------------
def _parse_uses(args: argparse.Namespace, config: Config) -> dict[str, float | str | None]:
    """``--uses gradient_penalty=10,label_smoothing`` -> a mapping; unknown names (likely typos)
    are kept as flags with a warning on stderr."""
    uses = parse_uses(args.uses)
    if uses:
        rules = config.ruleset(tuple(Path(d) for d in args.rules))
        unknown = unknown_uses(uses, rules)
        for name in unknown:
            near = difflib.get_close_matches(name, sorted(alias_table(rules.remedies)), n=2, cutoff=0.75)
            hint = f"did you mean {' or '.join(near)}?" if near else "see 'gandoctor explain MODE' for the remedy ids"
            Console(stderr=True, highlight=False).print(
                f"gandoctor: warning: --uses: {name!r} is not a technique gandoctor knows; kept as a flag ({hint})",
                markup=False, soft_wrap=True,
            )
    return uses


def _explain(args: argparse.Namespace, out: Console) -> int:
    rules = load_config(args.config).ruleset(tuple(Path(d) for d in args.rules))
    hit = resolve(args.code, rules)
    if hit.kind == "mode":
        _explain_mode(hit.name, rules, tuple(args.rules), out)
    elif hit.kind == "rule":
        _explain_rule(rules.by_code(hit.name), rules, out)
    else:
        _explain_remedy(rules.remedies[hit.name], rules, out)
    return EXIT_HEALTHY


def _citations(remedy: Remedy, rules: RuleSet, indent: str = "    ") -> list[str]:
    if not remedy.cites:
        return [f"{indent}source: {remedy.source}, section “{remedy.section}”"]
    return [f"{indent}source: {rules.sources[c.source].cite(c.section)}" for c in remedy.cites]


def _scaled(c: Condition) -> str:
    """How a threshold in calibrated units reads for a run (``scale = "d_loss_unit"``)."""
    return f" (x the run's {c.scale})" if c.scale else ""


def _timing(rule: Rule) -> str:
    """Warm-up and persistence as the engine applies them: in steps, capped by shares of the run."""
    p = rule.params
    warm = f"after {rule.warmup_steps} warm-up steps (at most {p['warmup_frac']:.0%} of the run)" if rule.warmup_steps > 0 else "from the first check"
    # The engine skips a shorter run as "too short to judge" (SkipReason.TOO_SHORT).
    shortest = f"; runs of {int(p['min_run_steps'])} steps or more" + ("; on the finished run only" if p["final_only"] else "")
    if rule.persist_steps <= 0:
        return f"{warm}, on a single check{shortest}"
    return (
        f"{warm}, holding at {p['persist_frac']:.0%} of the checks over {rule.persist_steps} steps (at most "
        f"{p['persist_run_frac']:.0%} of the run), and at {p['end_frac']:.0%} of the checks from then to the last record{shortest}"
    )


def _explain_rule(rule: Rule, rules: RuleSet, out: Console) -> None:
    out.print(f"[bold]{rule.code} {rule.name}[/bold] → {rule.mode}")
    out.print(rule.summary, markup=False)
    out.print("\n[bold]why[/bold]")
    out.print(_reflow(rule.why), markup=False)
    if rule.example:
        out.print("\n[bold]example[/bold]")
        out.print(rule.example, markup=False)
    if rule.caveat:
        out.print("\n[bold]caveat[/bold] (printed with every finding of this rule)")
        out.print(rule.caveat, markup=False)
    for note in rule.notes:
        c = note.condition
        out.print("\n[bold]note[/bold]", end=" ")
        out.print(f"(printed with a finding where {c.label()} {c.op} {c.threshold:g} held)", markup=False)
        out.print(note.text, markup=False)
    out.print(f"\n[bold]fires when[/bold] ({rule.match} of; {_timing(rule)})")
    run_frac, run_max = rule.params["window_run_frac"], rule.params["window_run_max"]
    if run_frac > 0:  # the listed windows give way to a share of the run
        cap = f", at most {run_max:g} steps" if run_max > 0 else ""
        out.print(f"  each window {run_frac:.0%} of the run{cap}, in place of the steps listed", markup=False)
    for c in rule.conditions:
        out.print(f"  {c.label()} {c.op} {c.threshold:g}{_scaled(c)}" + (" (optional)" if c.optional else ""), markup=False)
    for c in rule.corroborate:
        out.print(f"  corroborated by {c.label()} {c.op} {c.threshold:g}{_scaled(c)}", markup=False)
    if rule.only_if:
        out.print(f"  judged only for runs that use: {', '.join(rule.only_if)}", markup=False)
    if rule.skip_if:
        out.print(f"  not judged for runs that use: {', '.join(rule.skip_if)}", markup=False)
    if rule.params["exact_onset"]:
        out.print("  its first step is the mode's onset; an earlier rule of the mode is reported as the first sign", markup=False)
    out.print("\n[bold]remedies[/bold] (in the rule's order; 'gandoctor analyze' ranks them for a run)")
    for ref in rule.remedies:
        r = rules.remedies[ref.id]
        out.print(f"  - {r.title} ({r.id}): {r.action}", markup=False)
        for line in _citations(r, rules):
            out.print(line, markup=False)
    out.print(f"\n[dim]{rule.source_file}[/dim]")


def _explain_mode(mode: str, rules: RuleSet, dirs: tuple[str, ...], out: Console) -> None:
    notes, sources = load_mode_notes(dirs)
    out.print(f"[bold]{mode}[/bold]")
    note = notes.get(mode)
    if note is not None:
        out.print("\n[bold]what it looks like[/bold]")
        out.print(note.looks_like, markup=False)
        out.print("\n[bold]causes[/bold]")
        for cause in note.causes:
            out.print(f"  - {cause}", markup=False)
        for c in note.cites:
            out.print(f"    source: {sources[c.source].cite(c.section)}", markup=False)
    detecting = [r for r in rules.rules if r.mode == mode]
    out.print("\n[bold]detected by[/bold]")
    for rule in detecting:
        out.print(f"  {rule.code} {rule.name}: {rule.summary}", markup=False)
    if not detecting:
        out.print("  no active rule", markup=False)
    # The detecting rules' order first (best position over the rules), then the rest of the catalogue for the mode.
    best: dict[str, float] = {}
    for rule in detecting:
        for pos, ref in enumerate(rule.remedies):
            best[ref.id] = max(best.get(ref.id, 0.0), ref.weight * rules.remedies[ref.id].weight / (1 + 0.25 * pos))
    listed = sorted(best, key=lambda rid: (-best[rid], rid))
    others = [r.id for r in remedies_for_mode(mode, rules.remedies) if r.id not in best and r.kind == "change"]
    workflow = [r for r in remedies_for_mode(mode, rules.remedies) if r.kind == "workflow"]
    out.print("\n[bold]remedies[/bold] (the detecting rules' order; 'gandoctor analyze' ranks them for a run)")
    for i, rid in enumerate([*listed, *others], 1):
        r = rules.remedies[rid]
        if i == len(listed) + 1:
            out.print("  also in the catalogue for this mode:", markup=False)
        extra = f" [only with {' or '.join(r.only_if)}]" if r.only_if else ""
        out.print(f"  {i}. {r.title} ({r.id}){extra}: {r.action}", markup=False)
        if mode in r.addresses:
            out.print(f"    why here: {r.addresses[mode]}", markup=False)
        for line in _citations(r, rules):
            out.print(line, markup=False)
    if workflow:
        out.print("\n[bold]how to work on it[/bold]")
        for r in workflow:
            out.print(f"  - {r.title} ({r.id}): {r.action}", markup=False)
            for line in _citations(r, rules):
                out.print(line, markup=False)


def _explain_remedy(remedy: Remedy, rules: RuleSet, out: Console) -> None:
    out.print(f"[bold]{remedy.id}[/bold]: {escape(remedy.title)}" + (" (workflow)" if remedy.kind == "workflow" else ""))
    if remedy.aliases:
        out.print(f"also named: {', '.join(remedy.aliases)} (in --uses, Doctor(uses=...) and rule files)", markup=False)
    out.print("\n[bold]the change[/bold]")
    out.print(remedy.action, markup=False)
    if remedy.why:
        out.print("\n[bold]why it works[/bold]")
        out.print(remedy.why, markup=False)
    if remedy.addresses:
        out.print("\n[bold]addresses[/bold]")
        for mode, why in remedy.addresses.items():
            out.print(f"  {mode}: {why}", markup=False)
    limits = [f"  not when the run has {', '.join(remedy.not_if)}"] if remedy.not_if else []
    limits += [f"  only when the run has {' or '.join(remedy.only_if)}"] if remedy.only_if else []
    limits += [f"  skipped when: {c.say}" for c in remedy.skip]
    if limits:
        out.print("\n[bold]does not apply[/bold]")
        for line in limits:
            out.print(line, markup=False)
    if remedy.promote or remedy.prefer_if:
        out.print("\n[bold]ranked higher when[/bold] (values from the run)")
        for flag in remedy.prefer_if:
            out.print(f"  the run has {flag}", markup=False)
        for c in remedy.promote:
            out.print(f"  x{c.boost:g}: {c.say}", markup=False)
    if remedy.misconfigured:
        out.print("\n[bold]in use but misconfigured when[/bold]")
        for c in remedy.misconfigured:
            out.print(f"  {c.say}", markup=False)
    if remedy.weight != 1.0:
        out.print(f"\n[bold]catalogue weight[/bold] {remedy.weight:g}: {remedy.weight_reason}", markup=False)
    listing = [r.code for r in rules.rules if any(ref.id == remedy.id for ref in r.remedies)]
    out.print(f"\n[bold]listed by[/bold] {', '.join(listing) or 'no rule (see its modes)'}")
    out.print("\n[bold]sources[/bold]")
    for line in _citations(remedy, rules, indent="  "):
        out.print(line.replace("source: ", "- ", 1), markup=False)


def _fmt_value(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def _compare(args: argparse.Namespace, out: Console, err: Console) -> int:
    config = load_config(args.config)
    result = compare_runs(args.before, args.after, config=config, rules_dirs=args.rules, uses=_parse_uses(args, config), format=args.format)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_UNHEALTHY if result.new_failures or result.samples_left_the_data else EXIT_HEALTHY
    out.print(f"[bold]before[/bold] {escape(result.before.source)} ({result.before.verdict}, steps {result.before.first_step}..{result.before.last_step})")
    out.print(f"[bold]after[/bold]  {escape(result.after.source)} ({result.after.verdict}, steps {result.after.first_step}..{result.after.last_step})")
    table = Table("mode", "before", "after", box=None, pad_edge=False, header_style="bold")
    style = {"failing": "red", "ok": "green", "not checked": "dim"}
    for m in result.modes:
        table.add_row(m.mode, f"[{style[m.before]}]{m.before}[/]", f"[{style[m.after]}]{m.after}[/]")
    out.print(table)

    def describe(f: Finding | None) -> str:
        if f is None:
            return ""
        also = f" (+{', '.join(f.also_fired)})" if f.also_fired else ""
        return f"{f.rule}{also}, onset step {f.onset_step}, confidence {f.confidence:.2f}"

    for label, changes, side in (("gone", result.gone, "before"), ("new", result.new, "after"), ("unchanged", result.unchanged, "after")):
        for c in changes:
            detail = describe(getattr(c, side))
            if label == "unchanged":
                detail = f"{describe(c.before)} → {describe(c.after)}"
            out.print(f"  {label}: {c.mode} — {detail}", markup=False)
    if result.signals:
        sig = Table("signal (median, last 20%)", "before", "after", "change", box=None, pad_edge=False, header_style="bold")
        for s in result.signals:
            change = "" if s.change is None else f"{s.change:+.0%}"
            sig.add_row(s.name, _fmt_value(s.before), _fmt_value(s.after), change)
        out.print(sig)
    far = f"; G's samples end far from the data after, not before ({far_from_data_note(result.after.samples).removeprefix('but ')})"
    if result.new_failures:
        out.print(f"gandoctor compare: NEW FAILURE — {', '.join(result.new_failures)}{far if result.samples_left_the_data else ''}", markup=False)
        return EXIT_UNHEALTHY
    if result.samples_left_the_data:
        out.print(f"gandoctor compare: WORSE{far}", markup=False)
        return EXIT_UNHEALTHY
    fixed = f"; gone: {', '.join(c.mode for c in result.gone)}" if result.gone else ""
    out.print(f"gandoctor compare: no new failure{fixed}", markup=False)
    return EXIT_HEALTHY


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
