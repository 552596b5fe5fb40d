"""Every console string has a Simplified Chinese translation with the same placeholders."""

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "src/ecocloud_ops/web/translations/zh_Hans_CN/LC_MESSAGES/messages.po"


def test_catalog_covers_every_extracted_string(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "-o",
                    str(pot), "."], cwd=ROOT, check=True, capture_output=True)
    extracted = {m.id for m in read_po(pot.open("rb")) if m.id}
    catalog = {m.id: m.string for m in read_po(PO.open("rb")) if m.id}
    missing = sorted(i for i in extracted if not catalog.get(i))
    assert not missing, f"untranslated (run pybabel extract/update and translate): {missing}"


def test_placeholders_survive_translation() -> None:
    for m in read_po(PO.open("rb")):
        if m.id and m.string:
            assert set(re.findall(r"%\(\w+\)s", m.id)) == set(re.findall(r"%\(\w+\)s", m.string)), m.id
