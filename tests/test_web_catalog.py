"""Every text of the settings pages is in the Russian catalog, translated; and nothing stale is kept."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "server" / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
#: What is extracted, read from the same mapping `make catalog` uses (one list of where the pages'
#: texts live, kept in step with the layout).
METHODS = [
    (pattern.strip(), method.strip())
    for method, pattern in (
        line.strip()[1:-1].split(":", 1)
        for line in (ROOT / "server" / "translations" / "babel.cfg").read_text(encoding="utf-8").splitlines()
        if line.startswith("[")
    )
]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def extracted(root: Path = ROOT) -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(root), METHODS, keywords=KEYWORDS, options_map={}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_string_of_the_pages_is_in_the_catalog_and_translated():
    with CATALOG.open("rb") as source:
        catalog = read_po(source)
    translated = {m.id: m.string for m in catalog if m.id}

    in_code = extracted()

    assert len(in_code) > 50  # the extraction itself works
    assert sorted(in_code - translated.keys()) == [], "run `make catalog` and translate the new strings"
    assert sorted(k for k, v in translated.items() if not v) == []
    assert sorted(translated.keys() - in_code) == [], "strings no page uses any more"


def test_a_template_string_outside_the_catalog_is_noticed(tmp_path):
    page = tmp_path / "server" / "templates" / "admin" / "probe.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        "<p>{{ _('A sentence nobody translated') }}</p>{% trans %}And this{% endtrans %}", "utf-8"
    )

    assert extracted(tmp_path) == {"A sentence nobody translated", "And this"}
