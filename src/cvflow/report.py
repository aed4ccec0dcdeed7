"""One self-contained HTML page of results: sections of numbers, checks and pictures.

The page loads nothing: pictures are embedded as ``data:`` URIs, the style sheet is inline. It is
byte-reproducible: the same parts give the same bytes (no dates, no absolute paths, no run ids).
The library knows nothing of the chapter's tasks; :mod:`cvflow.pipelines.report` gathers the parts.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from cvflow.fileio import atomic_open


@dataclass(frozen=True)
class Row:
    """A table row: this run's value beside a reference value (the book's), both already formatted."""

    label: str
    value: str
    reference: str = ""
    note: str = ""


@dataclass(frozen=True)
class Check:
    """A claim checked on this run: ``holds`` True, False, or None when it could not be measured."""

    text: str
    holds: bool | None
    detail: str = ""


@dataclass(frozen=True)
class Picture:
    caption: str
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Part:
    """One section of the page."""

    anchor: str
    heading: str
    text: Sequence[str] = ()
    rows: Sequence[Row] = ()
    checks: Sequence[Check] = ()
    pictures: Sequence[Picture] = ()
    links: Sequence[str] = ()            # plain lines (e.g. the MLflow runs to open)
    notes: Sequence[str] = field(default_factory=tuple)


TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5em; color: #222; line-height: 1.45; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
.banner { padding: .7em 1em; border-radius: 6px; background: #fff4d6; border: 1px solid #e8c766; }
.banner.real { background: #e6f4ea; border-color: #8ac79b; }
nav ol { columns: 2; } table { border-collapse: collapse; margin: .8em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f3f3f3; } .note { color: #666; font-size: .9em; }
ul.checks { list-style: none; padding-left: 0; } ul.checks li { margin: .25em 0; }
.holds { color: #17692c; } .fails { color: #b3261e; } .unknown { color: #666; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; max-width: 48%; }
figure img { max-width: 100%; max-height: 560px; border: 1px solid #ddd; } figcaption { font-size: .9em; color: #555; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% for line in intro %}<p>{{ line | code }}</p>
{% endfor %}<p class="banner{{ ' real' if comparable else '' }}">{{ banner | code }}</p>
<nav><ol>{% for part in parts %}<li><a href="#{{ part.anchor }}">{{ part.heading }}</a></li>{% endfor %}</ol></nav>
{% for part in parts %}
<section id="{{ part.anchor }}">
<h2>{{ part.heading }}</h2>
{% for line in part.text %}<p>{{ line | code }}</p>
{% endfor %}{% if part.rows %}<table>
<tr><th>metric</th><th>this run</th><th>{{ reference_label }}</th><th>note</th></tr>
{% for row in part.rows %}<tr><td>{{ row.label }}</td><td class="num">{{ row.value }}</td><td class="num">{{ row.reference }}</td><td class="note">{{ row.note }}</td></tr>
{% endfor %}</table>
{% endif %}{% if part.checks %}<ul class="checks">
{% for check in part.checks %}<li class="{{ 'holds' if check.holds else ('unknown' if check.holds is none else 'fails') }}">{{ '&#10003; holds' | safe if check.holds else ('&#8212; not measured' | safe if check.holds is none else '&#10007; does not hold' | safe) }}: {{ check.text }}{% if check.detail %} <span class="note">({{ check.detail }})</span>{% endif %}</li>
{% endfor %}</ul>
{% endif %}{% for picture in part.pictures %}<figure><img src="{{ picture.data_uri() }}" alt="{{ picture.caption }}"><figcaption>{{ picture.caption }}</figcaption></figure>
{% endfor %}{% for line in part.links %}<p class="note">{{ line | code }}</p>
{% endfor %}{% for line in part.notes %}<p class="note">{{ line | code }}</p>
{% endfor %}</section>
{% endfor %}
</body>
</html>
"""


def code_spans(text: str) -> Markup:
    """Text escaped, with `backquoted` spans as <code> (commands and file names in the page's prose)."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def render(title: str, parts: Sequence[Part], banner: str, comparable: bool, intro: Sequence[str] = (),
           reference_label: str = "reference") -> str:
    """The page's HTML text (every value escaped; pictures embedded)."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), keep_trailing_newline=True)
    env.filters["code"] = code_spans
    return env.from_string(TEMPLATE).render(title=title, parts=list(parts), banner=banner, comparable=comparable,
                                            intro=list(intro), reference_label=reference_label)


def write(path: str | Path, title: str, parts: Sequence[Part], banner: str, comparable: bool,
          intro: Sequence[str] = (), reference_label: str = "reference") -> Path:
    """Write the page to ``path`` atomically."""
    text = render(title, parts, banner, comparable, intro, reference_label)
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return Path(path)
