"""The gandoctor command: analyze | gate | rules | explain | demo.

Exit codes: 0 healthy (or success), 1 a failing finding (gate) / unhealthy (analyze --strict-exit),
2 unreadable input or usage error, with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .diagnose import analyze
from .config import load_config
from .errors import GanDoctorError
from .reporters.gate import judge
from .rules import MODES, RuleSet

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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a run directory written by gandoctor, or a log file (.jsonl, .csv, .jsonl.gz)")
    p.add_argument("--config", help="a TOML config file (default: [tool.gandoctor] of the nearest pyproject.toml)")
    p.add_argument("--rules", action="append", default=[], metavar="DIR", help="an extra folder of rule files (repeatable)")
    p.add_argument("--uses", default="", metavar="FLAGS", help="comma-separated techniques the run uses, e.g. gradient_penalty,label_smoothing")
    p.add_argument("--format", choices=["runlog", "csv", "jsonl"], help="force a log format instead of detecting it")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gandoctor", description="Diagnose GAN training runs.")
    parser.add_argument("--version", action="version", version=f"gandoctor {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("analyze", help="diagnose a saved run and print the report")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
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
    p = sub.add_parser("rules", help="list the rules, or check a folder of rules and run their cases")
    p.add_argument("--config")
    p.add_argument("--rules", action="append", default=[], metavar="DIR")
    p.add_argument(
        "--check", metavar="DIR",
        help="validate the rule files in DIR and run the cases in DIR/cases/<CODE>.toml (exit 1 if a case fails)",
    )
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


def _report(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    config = load_config(args.config)
    uses = [u.strip() for u in args.uses.split(",") if u.strip()]
    err = Console(stderr=True)
    if not err.is_terminal or _size(Path(args.path)) < PROGRESS_MIN_BYTES:
        return analyze(args.path, config=config, rules_dirs=args.rules, uses=uses, format=args.format)
    # Large logs take seconds to read: show progress on stderr (stdout stays clean for --json).
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress("reading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("read", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return analyze(args.path, config=config, rules_dirs=args.rules, uses=uses, format=args.format, progress=update)


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.glob("gandoctor.jsonl*"))
        return path.stat().st_size
    except OSError:
        return 0


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


def _gate(args: argparse.Namespace, err: Console) -> int:
    config = load_config(args.config)
    rules = config.ruleset(tuple(Path(d) for d in args.rules))
    modes, codes = _parse_modes_and_rules("--fail-on", args.fail_on, rules)
    required: set[str] = set()
    if args.require_checked.strip():
        required, extra = _parse_modes_and_rules("--require-checked", args.require_checked)
        if extra:
            raise GanDoctorError("--require-checked takes modes only")
    report = _report(args)
    for warning in report.warnings:  # a gate that hides why it read little is no gate
        err.print(f"gandoctor: warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    result = judge(report, modes, codes, sorted(required))
    print(result.line)
    return int(result.exit_code)


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
            report = _report(args)
            if args.json:
                print(json.dumps(report.to_dict(), indent=2))
            else:
                out.print(report)
            return EXIT_HEALTHY
        if args.command == "gate":
            return _gate(args, err)
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
