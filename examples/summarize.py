"""One line per run of examples/run_variants.sh: the oracle's verdict next to gandoctor's
(Doctor.report(), `gandoctor analyze` of the run log, of the console output).

    python examples/summarize.py runs/examples
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _findings(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except Exception:  # noqa: BLE001 - a failed analyze leaves no JSON: say so
        err = path.with_suffix(".stderr").read_text().strip().splitlines() if path.with_suffix(".stderr").exists() else []
        return "ERROR " + (err[-1][:80] if err else "")
    found = ",".join(f"{f['mode'].split('_')[0]}:{f['rule']}@{f['onset_step']}" for f in data["findings"])
    return f"{data['verdict']}[{found}]" if found else data["verdict"]


def main(root: str) -> None:
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        run = summary_path.parent
        s = json.loads(summary_path.read_text())
        o = s["oracle"] or {}
        oracle = ("NaN" if not o.get("finite") else ("collapse" if o["collapse"] else "diverse")
                  + f"({o.get('classes')}cl,top{o.get('top_share', 0):.0%},real{o.get('realistic', 0):.0%})")
        doctor = ",".join(f"{f['mode'].split('_')[0]}:{f['rule']}@{f['onset']}" for f in s["doctor_findings"]) or s["doctor_verdict"]
        print(f"{run.name:34s} stop@{s['stopped_at']:<5} oracle={oracle:34s} onset={s['oracle_onset']}\n"
              f"    report={doctor}\n    analyze(log)={_findings(Path(f'{run}.analyze_log.json'))}\n"
              f"    analyze(console)={_findings(Path(f'{run}.analyze_console.json'))}")
        if s["doctor_warnings"]:
            print("    warnings:", s["doctor_warnings"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/examples")
