"""The bad-input survey (notes/scripts/hostile_inputs.py) keeps its promise for every case, and the README
quotes the count the script gives (no hand-kept figure)."""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_hostile_input_keeps_the_promise_and_the_readme_quotes_the_count(tmp_path):
    out = tmp_path / "rows.json"
    res = subprocess.run([sys.executable, str(ROOT / "notes" / "scripts" / "hostile_inputs.py"), "--json", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    counts = json.loads(out.read_text())["counts"]
    cases = len(json.loads(out.read_text())["rows"])
    failures = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert res.returncode == 0 and counts["kept the promise"] == cases, failures
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"hostile_inputs\.py` tries (\d+) bad inputs.*?all (\d+) keep the promise", readme, re.S)
    assert quoted, "README no longer quotes the survey's count"
    assert (int(quoted.group(1)), int(quoted.group(2))) == (cases, counts["kept the promise"])
