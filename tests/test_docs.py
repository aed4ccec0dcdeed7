"""The README is for users and the docs/ pages hold the rest: every relative link and `#anchor` in them resolves
(to a file of the repository, and to a heading of the page it names), and the README stays short.

Written by hand because no dependency of the project resolves Markdown links: the anchors follow GitHub's rule
(the heading's text, lowercased, punctuation dropped, spaces to '-', a repeat suffixed -1, -2...), which is
what a reader clicking the link on GitHub gets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 320

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" follows) or ')'
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The page without code (fenced blocks and inline spans), where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: inline markup and punctuation dropped, lowercased, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", "", text)  # markup: code, emphasis, strike, html tags
    text = re.sub(r"[^\w\- ]", "", text.lower())  # GitHub keeps letters, digits, '_', '-' and spaces
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor in ``page``, repeats numbered as GitHub does."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` whose file does not exist, or whose ``#anchor`` is no heading there."""
    broken = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ... are not checked here
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or not resolved.resolve().is_relative_to(REPO):
            broken.append(f"{target}: no file {resolved}")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == [], page.relative_to(REPO)


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES, "README.md is for users: move the rest to docs/"
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(_prose(readme)) if t.startswith("docs/")}
    assert {p.name for p in PAGES[1:]} <= linked, "every docs/ page is linked from the README"


def test_slug_follows_githubs_rule():
    assert slug("Open the runs in MLflow") == "open-the-runs-in-mlflow"
    assert slug("The real profile: the book's recipes") == "the-real-profile-the-books-recipes"
    assert slug("How dvc.yaml is generated") == "how-dvcyaml-is-generated"
    assert slug("CIFAR-10: augmentation (13.1) and the Kaggle submission (13.13)") == \
        "cifar-10-augmentation-131-and-the-kaggle-submission-1313"
    assert slug("Check an install in minutes: the smoke switch") == "check-an-install-in-minutes-the-smoke-switch"


def test_a_broken_link_or_anchor_is_found(tmp_path, monkeypatch):
    """The check itself: a missing file, a missing heading and a repeated heading's second anchor."""
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    (tmp_path / "a.md").write_text("# Top\n\n## Part\n\n## Part\n\n```\n[not a link](nowhere.md)\n```\n"
                                   "[ok](#part-1) [ok](b.md#b) [bad](#parts) [bad](c.md) `[code](x.md)`\n")
    (tmp_path / "b.md").write_text("# B\n")
    assert broken_links(tmp_path / "a.md") == ["#parts: no heading #parts in a.md",
                                               f"c.md: no file {tmp_path / 'c.md'}"]
