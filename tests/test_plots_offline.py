"""`dvc plots show` draws offline: .dvc/config names an HTML template with vega, vega-lite and vega-embed
inlined (byte for byte the npm builds, SHA-256 recorded), and the page DVC writes with it fetches nothing."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vega", "vega-lite", "vega-embed")
SCRIPT = re.compile(rb'<script data-package="([^"@]+)@([^"]+)" data-file="([^"]+)" data-sha256="([0-9a-f]{64})">'
                    rb"(.*?)</script>", re.S)
# Attributes with which a page loads something (a script, a style sheet, an image, a frame, a form...).
FETCHING = {"src", "href", "srcset", "data", "poster", "background", "action", "formaction", "manifest", "ping"}


def _template_path() -> Path:
    """The template `dvc plots show` uses here: plots.html_template, relative to .dvc/ as DVC reads it."""
    with Repo(str(REPO)) as repo:
        name = repo.config.get("plots", {}).get("html_template")
    assert name, ".dvc/config sets no plots.html_template: `dvc plots show` would load vega from a CDN"
    assert not Path(name).is_absolute(), "plots.html_template must be relative (to .dvc/) to work in any clone"
    return REPO / ".dvc" / name


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fetching: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.styles: list[str] = []
        self.scripts: list[tuple[dict, str]] = []
        self._open: tuple[str, dict] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.fetching += [(tag, key, value or "") for key, value in attrs.items() if key in FETCHING]
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh" and "url" in \
                (attrs.get("content") or "").lower():
            self.fetching.append((tag, "content", attrs["content"]))
        if tag in ("script", "style"):
            self._open = (tag, attrs)

    def handle_data(self, data):
        if self._open is not None:
            tag, attrs = self._open
            if tag == "style":
                self.styles.append(data)
            else:
                self.scripts.append((attrs, data))

    def handle_endtag(self, tag):
        self._open = None


def _urls_outside_schema(node, key: str = "") -> list[str]:
    """Every http(s) string in a vega spec but `$schema` (a name vega-embed reads, never fetches), and any
    `url` (data or an image vega would load)."""
    if isinstance(node, dict):
        found = [f"url: {value}" for name, value in node.items() if name == "url"]
        return found + [u for name, value in node.items() for u in _urls_outside_schema(value, name)]
    if isinstance(node, list):
        return [u for value in node for u in _urls_outside_schema(value, key)]
    if isinstance(node, str) and re.match(r"(?i)\s*(https?:)?//", node) and key != "$schema":
        return [node]
    return []


def test_template_inlines_the_recorded_npm_builds():
    text = _template_path().read_bytes()
    scripts = SCRIPT.findall(text)
    assert [name.decode() for name, *_ in scripts] == list(PACKAGES)
    page = (REPO / "docs" / "charts-offline.md").read_text()
    for name, version, file, recorded, body in scripts:
        name, version, file, recorded = (part.decode() for part in (name, version, file, recorded))
        assert file == f"build/{name}.min.js"
        assert hashlib.sha256(body).hexdigest() == recorded, f"{name}@{version}: inlined bytes changed"
        header = f"{name}@{version}  {file}  sha256 {recorded}"
        assert header in text.decode(), f"the header comment does not record {header}"
        row = f"| {name} | {version} | `{file}` | `{recorded}` |"
        assert row in page, f"docs/charts-offline.md's table does not record {row}"
    # DVC fills these by plain text replacement: the page has the plots' place, no place for DVC's CDN
    # script tags, and no inlined byte that DVC would replace.
    assert text.count(b"{plot_divs}") == 1
    assert b"{scripts}" not in text
    for *_, body in scripts:
        assert b"{plot_divs}" not in body and b"{refresh_tag}" not in body


def test_dvc_plots_show_writes_a_page_that_fetches_nothing(tmp_path):
    template = _template_path()
    project = tmp_path / "project"
    project.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    env_run = {"cwd": project, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([*dvc, "init", "--no-scm", "-q"], check=True, **env_run)
    # The repository's own setting (a path relative to .dvc/), with the template where it points.
    (project / ".dvc" / template.relative_to(REPO / ".dvc")).parent.mkdir(parents=True, exist_ok=True)
    (project / ".dvc" / template.relative_to(REPO / ".dvc")).write_bytes(template.read_bytes())
    for key, value in (("core.analytics", "false"),
                       ("plots.html_template", str(template.relative_to(REPO / ".dvc")))):
        subprocess.run([*dvc, "config", key, value], check=True, **env_run)
    (project / "metrics").mkdir()
    for run, scale in (("finetune", 1.0), ("scratch", 0.8)):
        rows = "".join(f"{epoch},{scale * epoch / 5:.2f},{1 / epoch:.3f}\n" for epoch in range(1, 6))
        (project / "metrics" / f"{run}_history.csv").write_text("epoch,test_acc,train_loss\n" + rows)
    (project / "dvc.yaml").write_text(
        "plots:\n"
        "- test accuracy per epoch:\n"
        "    template: linear\n"
        "    x: epoch\n"
        "    y: {metrics/finetune_history.csv: test_acc, metrics/scratch_history.csv: test_acc}\n"
        "- metrics/finetune_history.csv:\n"
        "    x: epoch\n"
        "    y: [train_loss]\n")

    shown = subprocess.run([*dvc, "plots", "show"], **env_run)
    assert shown.returncode == 0, shown.stderr + shown.stdout
    page_text = (project / "dvc_plots" / "index.html").read_text(encoding="utf8")

    page = _Page()
    page.feed(page_text)
    page.close()
    assert page.fetching == [], f"the page loads {page.fetching}"
    assert not any(re.search(r"(?i)url\s*\(|@import", style) for style in page.styles)
    assert "//cdn.jsdelivr.net/" not in page_text  # DVC's default script tags
    libraries = [attrs["data-package"].split("@")[0] for attrs, _ in page.scripts if "data-package" in attrs]
    assert libraries == list(PACKAGES)
    # The charts: one inline script each, its spec's data inline (values, no url to load).
    specs = [json.loads(m) for m in re.findall(r"var spec = (.*?);\s*vegaEmbed\(", page_text, re.S)]
    assert len(specs) == 2
    for spec in specs:
        assert _urls_outside_schema(spec) == []
        values = [row for data in ([spec["data"]] if isinstance(spec["data"], dict) else spec["data"])
                  for row in data.get("values", [])]
        assert values, "a chart with no inline data"
