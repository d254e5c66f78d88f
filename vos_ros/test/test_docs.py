"""Every relative link in README.md and docs/*.md points at a file that exists and, with a
``#fragment``, at a heading of that file (GitHub's anchors), so moving a section cannot leave a
dangling link behind."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose(path: Path) -> str:
    return FENCED.sub("", path.read_text(encoding="utf-8"))


def _anchors(path: Path) -> set[str]:
    return {_anchor(m.group(1)) for m in HEADING.finditer(_prose(path))}


def test_anchor_rule():
    assert _anchor("Boxes to masks: the prompt head") == "boxes-to-masks-the-prompt-head"
    assert _anchor("`fast`: two stages, and the scale") == "fast-two-stages-and-the-scale"
    assert _anchor("Scale: `full` segments at short side 512") == "scale-full-segments-at-short-side-512"


def test_docs_are_found():
    assert (REPO / "README.md").is_file()
    assert len(DOCS) > 3


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path):
    broken = []
    for match in LINK.finditer(_prose(doc)):
        target = match.group(1)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)
