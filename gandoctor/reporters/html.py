"""One self-contained HTML page for a Report: verdict, per-mode status, findings with their
evidence and ranked remedies, and plots of the recorded signals.

Self-contained means no network request when it is opened: the CSS is inline and every plot is
an inline SVG drawn by matplotlib (Agg backend, so no display is needed; ``pip install
'gandoctor[html]'``). Each plot marks every finding: a dashed line at its onset step and, shaded,
the evidence window (the ``window`` steps of data whose statistics first crossed the rule's
thresholds at the onset). Without a SignalLog the page still shows each finding's own trace.

Sample grids saved during the run (``RunData.samples``: the doctor's fixed-latent grids in the
run log, or image grids logged to TensorBoard) are shown as embedded PNGs: for each finding the
grid saved last before its onset and the first after it, and a strip of grids over the run.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..readers.grids import SampleGrid
from ..report import Report
from ..rules import MODES
from ..signals import SIGNALS, SignalLog
from ._modes import ModeStatus, ending_note, failing_detail_of, far_from_data_note, first_sign, mode_statuses, samples_line
from ._samples import Scale, data_uri, grid_png, nearest, shared_scale, strip

#: One colour per failure mode (colour-blind-safe Okabe-Ito palette).
MODE_COLORS: Mapping[str, str] = dict(zip(MODES, ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")))
_OTHER_COLOR = "#777777"
_MAX_POINTS = 800  # per line: enough for a 1000-px-wide plot, keeps the page small
_MAX_LAYERS = 10

_STATUS_LABEL = {"failing": "failing", "clear": "clear", "not_checked": "not checked"}


@dataclass(frozen=True)
class _Mark:
    """Where one finding goes on every plot."""

    label: str
    color: str
    onset: int
    window_start: int


@dataclass(frozen=True)
class _Panel:
    title: str
    names: tuple[str, ...]
    log_y: bool = False
    hline: float | None = None


def _require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("the HTML report draws its plots with matplotlib: pip install 'gandoctor[html]'") from exc
    matplotlib.use("Agg", force=False)  # no display; a no-op when the user already chose a backend
    import matplotlib.pyplot as plt

    return plt


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _marks(findings: Sequence[Mapping[str, Any]]) -> list[_Mark]:
    marks = []
    for f in findings:
        windows = [int(c["window"]) for c in f.get("conditions", []) if c.get("role") == "condition"]
        window = max(windows, default=0)
        marks.append(_Mark(f"{f['rule']} {f['mode']}", MODE_COLORS.get(f["mode"], _OTHER_COLOR), int(f["onset_step"]), int(f["onset_step"]) - window))
    return marks


# -- plotting -----------------------------------------------------------------------------
def _thin(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if steps.shape[0] <= _MAX_POINTS:
        return steps, values
    idx = np.linspace(0, steps.shape[0] - 1, _MAX_POINTS).round().astype(int)
    return steps[idx], values[idx]


def _svg(fig: Any, index: int) -> str:
    import matplotlib

    buffer = io.StringIO()
    # A distinct salt per figure keeps the SVG element ids of several inline figures apart, and
    # the output deterministic.
    with matplotlib.rc_context({"svg.hashsalt": f"gandoctor-{index}", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    start = text.find("<svg")
    svg = text[start:] if start >= 0 else text
    # Natural size (so every figure has the same type size), shrunk to the page when narrower.
    return svg.replace("<svg", '<svg class="plot" role="img"', 1)


def _decorate(ax: Any, marks: Sequence[_Mark]) -> None:
    for m in marks:
        ax.axvspan(m.window_start, m.onset, color=m.color, alpha=0.14, lw=0)
        ax.axvline(m.onset, color=m.color, ls="--", lw=1.2)


def _plot_series(ax: Any, signals: SignalLog, name: str, color: str | None, log_y: bool) -> bool:
    view = signals.get(name)
    if view is None:
        return False
    steps, values = _thin(view.steps, view.values.astype(float))
    values = np.where(np.isfinite(values), values, np.nan)
    if log_y:
        values = np.where(values > 0, values, np.nan)
    kwargs = {"color": color} if color else {}
    label = name if len(name) <= 48 else "…" + name[-47:]
    # A short series (a statistic measured a few times before a blow-up) would be invisible as a line.
    marker = "o" if np.isfinite(values).sum() < 30 else None
    ax.plot(steps, values, lw=1.1, label=label, marker=marker, ms=3, **kwargs)
    for start, stop in _nonfinite_runs(view.steps, view.nonfinite, view.values):
        # Non-finite values cannot be drawn: a red bar along the top edge marks their steps.
        ax.axvspan(start, stop, ymin=0.96, ymax=1.0, color="#B00020", lw=0)
    return True


def _symlog_if_wide(ax: Any, signals: SignalLog, names: Sequence[str]) -> None:
    """A series that spans many orders of magnitude (a loss on its way to overflow) flattens
    everything else into a line at zero: show it on a symmetric log scale instead."""
    views = [signals.get(n) for n in names]
    finite = np.concatenate([v.values[np.isfinite(v.values)] for v in views if v is not None] or [np.array([])])
    if finite.size < 2:
        return
    typical = float(np.median(np.abs(finite)))
    peak = float(np.max(np.abs(finite)))
    # Only for values that grow large: a ratio that sinks towards 0 is read better on its own scale.
    if peak > 100 and peak > 1e3 * max(typical, 1e-12):
        ax.set_yscale("symlog", linthresh=max(typical, 1e-6))


def _nonfinite_runs(steps: np.ndarray, nonfinite: np.ndarray, values: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous step ranges holding NaN/inf samples, after the first finite value (a statistic
    that needs a previous measurement starts as NaN by design, which is no blow-up)."""
    finite = np.isfinite(values)
    if not finite.any():
        return [(int(steps[0]), int(steps[-1]))] if steps.size else []
    first = int(np.argmax(finite))
    runs: list[tuple[int, int]] = []
    start = None
    for i in range(first, steps.shape[0]):
        bad = nonfinite[i] > 0
        if bad and start is None:
            start = i
        if not bad and start is not None:
            runs.append((int(steps[start]), int(steps[i - 1])))
            start = None
    if start is not None:
        runs.append((int(steps[start]), int(steps[-1])))
    # a single bad step still gets a visible bar
    width = max(1, int(steps[-1] - steps[0]) // 400)
    return [(a, max(b, a + width)) for a, b in runs]


def _figure(plt: Any, panels: Sequence[_Panel], signals: SignalLog, marks: Sequence[_Mark], index: int, columns: int = 1) -> str:
    rows = math.ceil(len(panels) / columns)
    used = min(columns, len(panels))
    width = 10.5 if columns == 1 else 3.6 * used
    height = 2.8 * rows if columns == 1 else 2.3 * rows
    fig, axes = plt.subplots(rows, used, figsize=(width, height), squeeze=False, sharex=True)
    try:
        flat = axes.ravel()
        for ax, panel in zip(flat, panels):
            palette = ["#333333", "#C44E52"] if len(panel.names) <= 2 else [None] * len(panel.names)
            for name, color in zip(panel.names, palette):
                _plot_series(ax, signals, name, color, panel.log_y)
            if panel.log_y:
                ax.set_yscale("log")
            else:
                _symlog_if_wide(ax, signals, panel.names)
            if panel.hline is not None:
                ax.axhline(panel.hline, color="#999999", lw=0.8, ls=":")
            _decorate(ax, marks)
            ax.set_title(panel.title, fontsize=10, loc="left")
            ax.grid(alpha=0.25, lw=0.5)
            ax.tick_params(labelsize=8)
            if len(panel.names) > 1 or columns == 1:
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel("step", fontsize=8)
        fig.tight_layout()
        return _svg(fig, index)
    finally:
        plt.close(fig)


def _layer_names(signals: SignalLog, prefix: str) -> list[str]:
    names = [n for n in signals.names() if n.startswith(prefix)]
    if len(names) <= _MAX_LAYERS:
        return names

    def size(name: str) -> float:
        view = signals.get(name)
        finite = view.values[np.isfinite(view.values)] if view is not None else np.array([])
        return float(np.median(finite)) if finite.size else math.inf

    return sorted(names, key=size, reverse=True)[:_MAX_LAYERS]


def _any_nonzero(signals: SignalLog, name: str) -> bool:
    view = signals.get(name)
    return view is not None and bool(np.any(view.values[np.isfinite(view.values)] != 0) or view.nonfinite.any())


def _groups(signals: SignalLog) -> list[tuple[str, str, list[_Panel], int]]:
    """(heading, caption, panels, columns) for every group that has data."""
    have = set(signals.names())

    def present(*names: str) -> tuple[str, ...]:
        return tuple(n for n in names if n in have)

    groups: list[tuple[str, str, list[_Panel], int]] = []
    used: set[str] = set()

    def add(heading: str, caption: str, panels: list[_Panel], columns: int = 1) -> None:
        panels = [p for p in panels if p.names]
        if panels:
            groups.append((heading, caption, panels, columns))
            for p in panels:
                used.update(p.names)

    add("Losses", SIGNALS["loss.d"] + "; " + SIGNALS["loss.g"] + ".", [_Panel("loss.d, loss.g", present("loss.d", "loss.g"))])
    add("Discriminator outputs", "D's mean output on real and fake samples, and d.auc: " + SIGNALS["d.auc"] + ".", [
        _Panel("D(x) and D(G(z)) as probabilities", present("d_prob.real", "d_prob.fake")),
        _Panel("raw D outputs", () if "d_prob.real" in have else present("d_out.real", "d_out.fake")),
        _Panel("d.auc", present("d.auc"), hline=0.5),
    ])
    add("Gradient norms", "Global L2 norm of each network's gradients at its optimizer step (log scale).", [
        _Panel("grad_norm.d, grad_norm.g", present("grad_norm.d", "grad_norm.g"), log_y=True),
        _Panel("parameter tensors with NaN/inf gradients", tuple(n for n in present("grad_nonfinite.d", "grad_nonfinite.g") if _any_nonzero(signals, n))),
    ])
    for role, net in (("d", "D"), ("g", "G")):
        layers = _layer_names(signals, f"grad_norm.{role}.layer.")
        total = sum(n.startswith(f"grad_norm.{role}.layer.") for n in have)
        note = f" The {len(layers)} largest of {total} layers are shown." if total > len(layers) else ""
        add(f"Per-layer gradient norms of {net}", f"Gradient norm of each layer of {net} on the per-layer schedule (log scale).{note}",
            [_Panel(f"grad_norm.{role}.layer.*", tuple(layers), log_y=True)])
    add("Weights", "Global weight norms and D's largest singular value (log scale).", [
        _Panel("weight_norm.d, weight_norm.g", present("weight_norm.d", "weight_norm.g"), log_y=True),
        _Panel("sigma_max.d", present("sigma_max.d"), log_y=True),
        _Panel("D's spectrum (normalised ranks)", present("spectrum.d.stable_rank", "spectrum.d.effective_rank")),
        _Panel("spectrum.d.layer.* (normalised stable rank per layer)", tuple(_layer_names(signals, "spectrum.d.layer."))),
    ])
    feats = [n for n in sorted(have) if n.startswith("feat.")]
    add("Sample statistics", "Statistics of generated samples against the real data, one panel each.",
        [_Panel(n, (n,), hline=1.0 if n.endswith("_ratio") else None) for n in feats], columns=3)
    rest = [n for n in sorted(have - used) if n not in ("grad_nonfinite.d", "grad_nonfinite.g") and not n.startswith(("grad_norm.d.layer.", "grad_norm.g.layer.", "spectrum.d.layer."))]
    add("Other signals", "Every other recorded series.", [_Panel(n, (n,)) for n in rest], columns=3)
    return groups


def _trace_svg(plt: Any, finding: Mapping[str, Any], index: int) -> str:
    """The finding's first condition statistic over the run, with its threshold and onset."""
    values = np.array([v if isinstance(v, (int, float)) else math.nan for v in finding["trace"]["values"]], dtype=float)
    if not values.size or not np.isfinite(values).any():
        return ""
    first, last = finding["trace"]["first_step"], finding["trace"]["last_step"]
    steps = np.linspace(first, last, values.size)
    cond = finding["conditions"][0]
    color = MODE_COLORS.get(finding["mode"], _OTHER_COLOR)
    fig, ax = plt.subplots(figsize=(6.0, 1.7))
    try:
        ax.plot(steps, values, color="#333333", lw=1.2)
        threshold = cond["threshold"]
        if isinstance(threshold, (int, float)):
            ax.axhline(threshold, color=color, lw=1, ls=":", label=f"rule {cond['op']} {_fmt(threshold)}")
        _decorate(ax, _marks([finding]))
        ax.set_title(f"{cond['stat']}({cond['signal']}, {cond['window']})", fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
        ax.legend(fontsize=7, frameon=False, loc="best")
        fig.tight_layout()
        return _svg(fig, index)
    finally:
        plt.close(fig)


# -- page ---------------------------------------------------------------------------------
_CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #e0e0e0; --bad: #B00020; --ok: #1E7B34; --na: #7a7a7a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1100px; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta, .caption, .muted { color: var(--muted); font-size: 13px; }
.caveat { background: #fff8e1; border-left: 3px solid #f9a825; padding: 4px 10px; font-size: 14px; }
.verdict { display: inline-block; font-weight: 700; padding: 2px 10px; border-radius: 4px; color: #fff; }
.verdict.unhealthy { background: var(--bad); } .verdict.healthy { background: var(--ok); }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 6px 0 10px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; min-width: 88px; text-align: center; font-size: 12px; font-weight: 600; padding: 1px 8px;
         border-radius: 10px; color: #fff; }
.badge.failing { background: var(--bad); } .badge.clear { background: var(--ok); } .badge.not_checked { background: var(--na); }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px; margin-right: 6px; }
.finding { border-left: 4px solid var(--na); padding: 2px 0 4px 14px; margin: 18px 0; }
.finding .trace { max-width: 620px; }
ol.remedies li { margin: 4px 0; } .source { color: var(--muted); font-size: 13px; }
svg.plot { max-width: 100%; height: auto; display: block; }
figure { margin: 10px 0 18px; } figcaption { color: var(--muted); font-size: 13px; margin-top: 2px; }
.legend span { margin-right: 16px; white-space: nowrap; font-size: 13px; }
table.context { width: auto; min-width: 420px; }
.grids { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-end; }
.grids figure { margin: 4px 0; } .grids figcaption { margin-top: 3px; }
.grids img { display: block; image-rendering: pixelated; border: 1px solid var(--line); }
.grids.strip img { width: 112px; height: auto; } .grids.strip figcaption { max-width: 112px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
"""


def _status_rows(statuses: Iterable[ModeStatus]) -> str:
    rows = []
    for s in statuses:
        color = MODE_COLORS.get(s.mode, _OTHER_COLOR)
        detail = _esc(s.reason)
        if s.status == "failing" and s.finding is not None:
            # Where it began and on what, linked to the finding below (as the console's table says it).
            began, on = failing_detail_of(s.finding)
            detail = f'<a href="#finding-{_esc(s.mode)}">{_esc(began)}</a> {_esc(on)}'
        rows.append(
            f'<tr><td><span class="swatch" style="background:{color}"></span>{_esc(s.mode)}</td>'
            f'<td><span class="badge {s.status}">{_STATUS_LABEL[s.status]}</span></td><td>{detail}</td></tr>'
        )
    return '<table class="modes"><tr><th>mode</th><th>status</th><th>detail</th></tr>' + "".join(rows) + "</table>"


def _first_sign(f: Mapping[str, Any]) -> str:
    """' · first sign at step N (RULE)' where an earlier rule saw the mode coming (reports of older versions: none)."""
    sign = first_sign(f.get("first_sign_step"), _esc(str(f.get("first_sign_rule", ""))))
    return f" · {sign}" if sign else ""


def _finding_html(f: Mapping[str, Any], trace: str, samples: str = "") -> str:
    color = MODE_COLORS.get(f["mode"], _OTHER_COLOR)
    state = "still active" if f["active"] else f"last held at step {f['last_step']}"
    also = f" · also fired: {_esc(', '.join(f['also_fired']))}" if f.get("also_fired") else ""
    parts = [
        f'<div class="finding" style="border-left-color:{color}" id="finding-{_esc(f["mode"])}">',
        f'<h3>{_esc(f["mode"])} <span class="muted">{_esc(f["rule"])} {_esc(f["rule_name"])}</span></h3>',
        f"<p>{_esc(f['summary'])}</p>",
        *([f'<p class="caveat"><b>Caveat:</b> {_esc(f["caveat"])}</p>'] if f.get("caveat") else []),
        f'<p class="meta">onset step <b>{f["onset_step"]}</b>{_first_sign(f)} · confidence {f["confidence"]:.2f} · {state}{also}</p>',
        "<table><tr><th></th><th>evidence</th><th>value</th><th>rule</th><th>role</th></tr>",
    ]
    for c in f["conditions"]:
        mark = "✓" if c["held"] else "·"
        parts.append(
            f'<tr><td>{mark}</td><td><code>{_esc(c["stat"])}({_esc(c["signal"])}, {c["window"]})</code></td>'
            f'<td class="num">{_esc(_fmt(c["value"]))}</td><td><code>{_esc(c["op"])} {_esc(_fmt(c["threshold"]))}</code></td>'
            f'<td class="muted">{_esc(c["role"])}</td></tr>'
        )
    parts.append("</table>")
    if trace:
        parts.append(f'<div class="trace">{trace}</div>')
    if samples:
        parts.append(samples)
    if f["remedies"]:
        parts.append("<p><b>Remedies, best first</b></p><ol class=\"remedies\">")
        for r in f["remedies"]:
            parts.append(
                f"<li><b>{_esc(r['title'])}</b>: {_esc(r['action'])}<br>"
                f'<span class="source">source: {_esc(r["source"])}, section “{_esc(r["section"])}” · score {r["score"]:.2f}'
                f"{' · ' + _esc(r['reason']) if r.get('reason') else ''}</span></li>"
            )
        parts.append("</ol>")
    for s in f.get("skipped_remedies", []):
        parts.append(f'<p class="muted">skipped: {_esc(s["title"])}: {_esc(s["reason"])}</p>')
    parts.append("</div>")
    return "\n".join(parts)


class _Grids:
    """The run's sample grids, each drawn once."""

    def __init__(self, plt: Any, grids: Sequence[SampleGrid]) -> None:
        self.plt, self.grids = plt, sorted(grids, key=lambda g: g.step)
        self.scale: Scale = shared_scale(self.grids)
        self._uris: dict[int, str] = {}
        self.shown: set[int] = set()

    def figure(self, grid: SampleGrid, caption: str) -> str:
        if id(grid) not in self._uris:
            self._uris[id(grid)] = data_uri(grid_png(self.plt, grid, self.scale))
        self.shown.add(id(grid))
        alt = f"samples at step {grid.step}"
        return f'<figure><img src="{self._uris[id(grid)]}" alt="{_esc(alt)}"><figcaption>{caption}</figcaption></figure>'

    def near(self, onset: int) -> str:
        before, after = nearest(self.grids, onset)
        figures = []
        if before is not None:
            where = "at the onset" if before.step == onset else f"{onset - before.step} steps before the onset"
            figures.append(self.figure(before, f"step <b>{before.step}</b> · {where}"))
        if after is not None:
            figures.append(self.figure(after, f"step <b>{after.step}</b> · {after.step - onset} steps after the onset"))
        if not figures:
            return ""
        return '<p><b>Samples near the onset</b></p><div class="grids">' + "".join(figures) + "</div>"

    def over_the_run(self, marks: Sequence[_Mark]) -> str:
        chosen = strip(self.grids)
        if not chosen or all(id(g) in self.shown for g in self.grids):
            return ""
        figures, previous = [], -math.inf
        for g in chosen:
            # a finding whose onset falls between the previous grid shown and this one
            onsets = "".join(f' · <span class="swatch" style="background:{m.color}"></span>onset {_esc(m.label)}'
                             for m in marks if previous < m.onset <= g.step)
            figures.append(self.figure(g, f"step {g.step}{onsets}"))
            previous = g.step
        figures_html = "".join(figures)
        tags = sorted({g.source for g in chosen})
        what = ("G's outputs for the doctor's fixed latent codes (the same codes at every step)"
                if tags == ["runlog"] else "the sample images logged under " + ", ".join(f"'{t}'" for t in tags))
        note = f" {len(chosen)} of the {len(self.grids)} saved grids are shown." if len(chosen) < len(self.grids) else ""
        return (f'<h2>Samples over the run</h2><div class="grids strip">{figures_html}</div>'
                f'<p class="caption">{_esc(what)}.{note} Images are scaled to each grid\'s own range; '
                "2-D samples and vectors share one scale over the run.</p>")


def render_html(report: Report, signals: SignalLog | None = None, title: str | None = None, samples: Sequence[SampleGrid] = ()) -> str:
    """The whole page as a string; write it to a ``.html`` file and open it anywhere, offline.

    ``samples``: the sample grids saved during the run (``RunData.samples``), shown near each
    finding's onset and over the run."""
    plt = _require_matplotlib()
    grids = _Grids(plt, samples)
    data = report.to_dict()
    statuses = mode_statuses(report, data)
    findings = data["findings"]
    marks = _marks(findings)
    source = data.get("source") or "live run"
    steps = data.get("steps", {})
    span = f"steps {steps.get('first')}–{steps.get('last')}" if steps.get("first") is not None else "no steps recorded"
    heading = title or f"gandoctor: {source}"
    figure_index = 0

    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(heading)}</h1>",
        (f'<p><span class="verdict {data["verdict"]}">{data["verdict"].upper()}</span> '
         f'<span class="meta">{_esc(span)} · {data["rules_checked"]} rules checked · '
         f'{len(findings)} finding{"s" if len(findings) != 1 else ""}</span></p>'),
    ]
    note = far_from_data_note(report.samples)
    if note:
        said = f"Healthy, {note}" if data["verdict"] == "healthy" else note.removeprefix("but ").capitalize()
        out.append(f'<p class="caveat">{_esc(said)}.</p>')
    if ended := ending_note(report):
        out.append(f'<p class="caveat">{_esc(ended[0].upper() + ended[1:])}.</p>')
    if report.samples is not None:
        out.append(f'<p class="meta">{_esc(samples_line(report.samples))}</p>')
    out += ["<h2>Failure modes</h2>", _status_rows(statuses)]
    if findings:
        out.append("<h2>Findings</h2>")
        for f in findings:
            figure_index += 1
            out.append(_finding_html(f, _trace_svg(plt, f, figure_index), grids.near(int(f["onset_step"]))))
    out.append(grids.over_the_run(marks))
    if signals is not None and signals.names():
        out.append("<h2>Signals</h2>")
        if marks:
            legend = "".join(
                f'<span><span class="swatch" style="background:{m.color}"></span>{_esc(m.label)}: onset step {m.onset}</span>'
                for m in marks
            )
            out.append(f'<p class="legend">{legend}</p><p class="caption">Dashed line: onset. Shaded: the evidence window '
                       "(the steps whose statistics first crossed the rule's thresholds). Red bar on the top edge: steps with NaN/inf values.</p>")
        for heading_, caption, panels, columns in _groups(signals):
            figure_index += 1
            svg = _figure(plt, panels, signals, marks, figure_index, columns)
            out.append(f"<h3>{_esc(heading_)}</h3><figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>")
    elif signals is None:
        out.append('<p class="muted">No signal log was given: only the findings\' own traces are plotted.</p>')
    context = data.get("context", {})
    out.append("<h2>Run</h2>")
    flags = ", ".join(context.get("flags", [])) or "none"
    out.append(f"<p><b>techniques seen or declared:</b> {_esc(flags)}</p>")
    values = context.get("values", {})
    if values:
        out.append("<table class=\"context\"><tr><th>context</th><th>value</th></tr>" + "".join(
            f'<tr><td><code>{_esc(k)}</code></td><td class="num">{_esc(_fmt(v))}</td></tr>' for k, v in sorted(values.items())
        ) + "</table>")
    if data.get("skipped_rules"):
        out.append("<p><b>rules skipped:</b></p><ul>" + "".join(
            f"<li><code>{_esc(s['rule'])}</code> {_esc(s['reason'])}</li>" for s in data["skipped_rules"]) + "</ul>")
    cleared = [a for a in data.get("alerts", []) if not a["holds_at_end"]]
    if cleared:
        out.append("<p><b>raised during training, not holding at the last step:</b></p><ul>" + "".join(
            f"<li>{_esc(a['mode'])} (<code>{_esc(a['rule'])}</code>) alerted at step {a['seen_at']}, onset {a['onset_step']}</li>"
            for a in cleared) + "</ul>")
    for w in data.get("warnings", []):
        out.append(f'<p class="muted">warning: {_esc(w)}</p>')
    out.append('<p class="caption">✓ = the condition held where the finding was established; · = it did not. '
               "Generated by gandoctor.</p></body></html>")
    return "\n".join(out) + "\n"
