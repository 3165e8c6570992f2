"""Every relative link of README.md and docs/ leads to a file that exists, and to a heading in it.

Links are read as GitHub renders them: fenced code blocks and code spans hold no links, a
heading's anchor is GitHub's slug of its text (lower case, punctuation dropped, spaces to
hyphens, ``-1``, ``-2`` ... for repeats). Code, charts and scripts that name a page of docs/
(help strings, comments) are checked too, so moving a section cannot leave a pointer behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serverutil import PROJECT_ROOT

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
#: A page of docs/ (or the README) named in code, a chart or a script, with its anchor if any.
NAMED_PAGE = re.compile(r"(?<![\w./-])((?:docs/[\w./-]+\.(?:md|json|png))|README\.md)(?:#([\w-]+))?")
#: Where code and configuration that may name a page live (the docs themselves are parsed as markdown).
NAMING_DIRS = (
    "contract",
    "transformer",
    "predictor",
    "audioguard",
    "scripts",
    "helm",
    "manifests",
    "bench",
    "tests",
)
NAMING_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".txt", ".toml", ".tpl", ".json", ".cfg"}


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower case, without punctuation."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("**", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML shows nothing
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def without_code(markdown: str) -> str:
    """The text with fenced blocks and code spans blanked (they render no links or headings)."""
    text = FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), markdown)
    return CODE_SPAN.sub("", text)


def anchors(markdown: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered) and explicit HTML anchors."""
    text = FENCE.sub("", markdown)
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(text):
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found | set(HTML_ANCHOR.findall(text))


def links(markdown: str) -> Iterator[str]:
    """The targets of a page's links and images, outside code."""
    for match in LINK.finditer(without_code(markdown)):
        yield match.group(1)


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` whose file or anchor does not exist, with why."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{target}: no such file {destination}")
        elif anchor:
            if destination.suffix != ".md":
                problems.append(f"{target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{target}: no heading '{anchor}' in {destination.name}")
    return problems


def documentation_pages() -> list[Path]:
    return [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]


def naming_files() -> Iterator[Path]:
    for directory in NAMING_DIRS:
        for path in sorted((PROJECT_ROOT / directory).rglob("*")):
            if path.suffix in NAMING_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                yield path


# --- the checker itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        (
            "4. The SIFIS endpoint (transformer REST port, 5000 under `audioguard serve`)",
            "4-the-sifis-endpoint-transformer-rest-port-5000-under-audioguard-serve",
        ),
        ("Listening to the home's cameras and microphones", "listening-to-the-homes-cameras-and-microphones"),
        (
            "`dp_noise` (the old service's method, kept for compatibility)",
            "dp_noise-the-old-services-method-kept-for-compatibility",
        ),
        (
            "Privacy-strong topology: transformer on the edge",
            "privacy-strong-topology-transformer-on-the-edge",
        ),
        ("Images, tested", "images-tested"),
    ],
)
def test_slugs_are_githubs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_broken_file_or_anchor_is_reported_and_code_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n\n## A section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here\n\n"
        "[ok](other.md#a-section) [repeat](other.md#a-section-1) [self](#here) [web](https://x.org/#y)\n"
        "[no file](missing.md) [no anchor](other.md#nowhere) ![no image](pic.png)\n"
        "`[in a span](missing-too.md)`\n\n```\n[in a block](missing-three.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert [p.split(":")[0] for p in problems] == ["missing.md", "other.md#nowhere", "pic.png"]


# --- the project's pages ------------------------------------------------------------------------


@pytest.mark.parametrize("page", documentation_pages(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_pages_named_in_code_and_charts_exist() -> None:
    problems = []
    for path in naming_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in NAMED_PAGE.finditer(text):
            name, anchor = match.group(1), match.group(2)
            target = PROJECT_ROOT / name
            where = f"{path.relative_to(PROJECT_ROOT)}: {match.group(0)}"
            if not target.exists():
                problems.append(f"{where}: no such file")
            elif anchor and anchor not in anchors(target.read_text(encoding="utf-8")):
                problems.append(f"{where}: no such heading")
    assert problems == []
