"""The HTML report: self-contained, complete, and loading cleanly in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the 'html' extra (matplotlib) is not installed: pip install 'gandoctor[html]'")

import gandoctor
from gandoctor.findings import Finding
from gandoctor.report import Report
from gandoctor.reporters.html import MODE_COLORS, render_html

RUNS = Path(__file__).resolve().parent.parent / "fixtures" / "runs"
# A recorded real run where D dominates and G then collapses: two findings, onsets 300 and 504.
FAILING = RUNS / "ddom_ring8_s0"


@pytest.fixture(scope="module")
def failing() -> tuple[Report, gandoctor.SignalLog]:
    return gandoctor.analyze(FAILING), gandoctor.read_run(FAILING).signals


@pytest.fixture(scope="module")
def page(failing) -> str:
    report, signals = failing
    return render_html(report, signals)


def outside_refs(page: str) -> list[str]:
    """References that are neither a fragment inside the page (SVG clip paths, marker
    definitions) nor an embedded PNG (a data URI)."""
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    assert refs
    return [ref for ref in refs if not ref.startswith(("#", "data:image/png;base64,"))]


def test_page_requests_nothing_from_outside(page):
    assert "<script" not in page and "<link" not in page and "<img" not in page  # this run saved no sample grids
    assert outside_refs(page) == []


def test_page_holds_status_findings_remedies_and_plots(page, failing):
    report, _ = failing
    assert report.verdict == "unhealthy" and {"discriminator_dominance", "mode_collapse"} <= set(report.modes)
    assert "UNHEALTHY" in page
    for mode in gandoctor.MODES:
        assert f">{mode}<" in page  # a status row for each of the six modes
    assert page.count('class="badge failing"') == 2
    assert page.count('class="badge clear"') == 4
    for f in report.findings:
        assert f"onset step <b>{f.onset_step}</b>" in page
        # the status table says where each failing mode began and links to its finding
        assert f'<a href="#finding-{f.mode}">from step {f.onset_step}</a> ({f.rule}, confidence {f.confidence:.2f}' in page
        assert f'id="finding-{f.mode}"' in page
        for r in f.remedies:
            assert r.title.replace("'", "&#x27;") in page
            assert r.section.replace("'", "&#x27;").replace('"', "&quot;") in page
    for heading in ("Losses", "Discriminator outputs", "Gradient norms", "Per-layer gradient norms of D", "Sample statistics"):
        assert f"<h3>{heading}</h3>" in page
    assert page.count("<svg") >= 8  # two finding traces and at least six signal figures
    # every finding's onset line and evidence window are drawn in its mode's colour
    for f in report.findings:
        color = MODE_COLORS[f.mode].lower()
        assert page.count(f"stroke: {color}") >= 6
        assert page.count(f"fill: {color}; opacity: 0.14") >= 6


def test_without_a_signal_log_the_findings_traces_remain(failing):
    report, _ = failing
    page = render_html(report)
    assert page.count("<svg") == len(report.findings)
    assert "No signal log was given" in page


def test_mode_status_comes_from_the_report_when_it_carries_it(failing):
    report, _ = failing

    @dataclass(frozen=True)
    class WithModes(Report):
        def to_dict(self):
            data = super().to_dict()
            data["modes"] = [
                {"mode": "mode_collapse", "status": "failing", "reason": "GD302"},
                {"mode": "vanishing_gradients", "status": "not_checked", "reason": "grad_norm.g not recorded"},
            ]
            return data

    page = render_html(WithModes(findings=report.findings, context=report.context))
    assert 'class="badge not_checked">not checked<' in page
    assert "grad_norm.g not recorded" in page


def test_healthy_run():
    run = RUNS / "healthy_ring8_s0"
    page = render_html(gandoctor.analyze(run))  # the plots are covered above; this is about the verdict
    assert "HEALTHY" in page and "badge failing" not in page and "<h2>Findings</h2>" not in page


# -- in a real browser ------------------------------------------------------------------------
_CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
_QUIET = [
    "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
]


def browse(page: Path, out: Path, height: int) -> tuple[Path, list[str], list[str]]:
    """Screenshot ``page``; return it, the console messages and the URLs the page itself requested."""
    shot, netlog = out / f"{page.stem}.png", out / f"{page.stem}.netlog.json"
    done = subprocess.run(
        [_CHROMIUM, *_QUIET, "--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}",
         f"--screenshot={shot}", f"--window-size=1200,{height}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    requested: set[str] = set()
    # The browser's own background traffic has no page origin; the page's requests carry file://.
    for event in json.loads(netlog.read_text()).get("events", []):
        params = event.get("params", {})
        if "file://" in str(params.get("network_isolation_key", "")) and not str(params.get("url", "file:")).startswith("file:"):
            requested.add(params["url"])
    return shot, console, sorted(requested)


@pytest.mark.skipif(_CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium; .ci/run installs it)")
def test_page_loads_cleanly_in_headless_chromium(page, tmp_path):
    from PIL import Image

    # The checks below can fail: a page with a script error and an outside image is caught.
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>undefinedFn()</script><img src="http://example.invalid/x.png"></body></html>')
    _, console, requested = browse(bad, tmp_path, 300)
    assert any("undefinedFn" in line for line in console) and requested == ["http://example.invalid/x.png"]

    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    shot, console, requested = browse(path, tmp_path, 6000)
    assert console == [] and requested == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 6000)
    # The plots are drawn: the onset colour of each finding shows up below the findings section.
    lower = image.crop((0, 3000, 1200, 6000))
    colors = {c for _, c in lower.getcolors(maxcolors=1 << 20)}
    for mode in ("discriminator_dominance", "mode_collapse"):
        rgb = tuple(int(MODE_COLORS[mode][i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in colors, mode


# -- sample grids --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A real tiny run on 8x8 digits where D dominates; the doctor saved a grid every 50 steps."""
    from gandoctor.diagnose import analyze_run

    from ._digits import record

    run = tmp_path_factory.mktemp("digits")
    record(run)
    report, data = analyze_run(run)
    return report, data, render_html(report, data.signals, samples=data.samples)


def _images(page: str) -> list[tuple[str, str]]:
    """(PNG data URI, caption) of every sample grid on the page, in order."""
    return re.findall(r'<figure><img src="(data:image/png;base64,[^"]+)" alt="[^"]*"><figcaption>(.*?)</figcaption></figure>', page)


def test_each_finding_shows_the_grids_saved_nearest_its_onset(digits):
    import base64
    import io

    from PIL import Image

    report, data, page = digits
    assert report.findings and len(data.samples) == 12 and outside_refs(page) == []
    for f in report.findings:
        before = max(g.step for g in data.samples if g.step <= f.onset_step)
        after = min(g.step for g in data.samples if g.step > f.onset_step)
        section = page.split(f'id="finding-{f.mode}"', 1)[1].split("</div>\n</div>", 1)[0]
        assert "Samples near the onset" in section
        captions = [c for _, c in _images(section)]
        assert captions[0].startswith(f"step <b>{before}</b> · ") and captions[1] == f"step <b>{after}</b> · {after - f.onset_step} steps after the onset"
    uri = _images(page)[0][0]
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    # 16 samples of 8x8 tiled 4x4 with 1-px gaps around each (37 px), enlarged by whole pixels
    assert image.format == "PNG" and image.size[0] == image.size[1] and image.size[0] % 37 == 0 and image.size[0] > 37


def test_the_strip_over_the_run_shows_every_grid_with_the_onset_marked(digits):
    report, data, page = digits
    strip = page.split("<h2>Samples over the run</h2>", 1)[1].split("</div>", 1)[0]
    captions = [c for _, c in _images(strip)]
    assert [int(re.match(r"step (\d+)", c).group(1)) for c in captions] == [g.step for g in data.samples]
    onset = report.findings[0].onset_step
    marked = [c for c in captions if "onset" in c]
    first_after = min(g.step for g in data.samples if g.step >= onset)
    assert marked and marked[0].startswith(f"step {first_after} ·")


def test_without_grids_there_is_no_samples_section(digits):
    report, data, _ = digits
    page = render_html(report, data.signals)
    assert "Samples" not in page and "<img" not in page


@pytest.mark.skipif(_CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium; .ci/run installs it)")
def test_the_sample_grids_are_drawn_in_headless_chromium(digits, tmp_path):
    from PIL import Image

    _, _, page = digits
    path = tmp_path / "samples.html"
    path.write_text(page, encoding="utf-8")
    shot, console, requested = browse(path, tmp_path, 2400)
    assert console == [] and requested == []
    # The grids near the onset sit below the finding's trace: the tiles' grey levels show up
    # there (the page itself is white, black text, and a few plot colours).
    pixels = Image.open(shot).convert("L").crop((0, 850, 1200, 1200)).getcolors(maxcolors=1 << 20)
    greys = {value for count, value in pixels if 40 < value < 215 and count >= 20}
    assert len(greys) > 50


def test_live_alerts_that_no_longer_hold_are_listed():
    from gandoctor.report import Alert

    report = Report(findings=(), alerts=(Alert("discriminator_dominance", "GD101", 250, 200),))
    page = render_html(report)
    assert "not holding at the last step" in page and "alerted at step 250, onset 200" in page
    assert "not holding" not in render_html(Report(findings=()))


def test_a_first_sign_is_named_beside_the_onset():
    f = Finding("exploding_gradients", "GD501", "non-finite-values", "NaN.", 260, 265, True, 0.9, {}, (), first_sign_step=230, first_sign_rule="GD507<")
    page = render_html(Report((f,)))
    assert "onset step <b>260</b> · first sign at step 230 (GD507&lt;)" in page
