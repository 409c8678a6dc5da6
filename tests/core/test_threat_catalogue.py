import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_threat_docs_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_threat_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_threat_names_a_registered_rule():
    from modelsec import formats, rules
    from modelsec.findings import THREATS

    formats.load_all()
    known = set(rules.registry())
    unknown = {t.code: t.rule for t in THREATS.values() if t.rule not in known}
    assert unknown == {}
