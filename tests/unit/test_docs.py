"""The README stays a five-minute read, its links and those of docs/ lead somewhere, and nothing the
README once said was lost when it moved to docs/."""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*```")
# Every heading of the README before it was split into docs/ (commit 9bf057f): each is still a heading
# somewhere, so each section has a home.
HEADINGS_BEFORE_THE_SPLIT = [
    "Pixel Gateway",
    "What it is",
    "Using the API locally",
    "The Conversions API Gateway control plane",
    "Tenants and app credentials: `bin/pixel-admin`",
    "The event pipeline",
    "Meta: local by default",
    "Speed: `make bench`",
    "Operations",
    "Who may do what (IAM)",
    "With Docker",
    "Deploying",
    "Bytecode compiled at build time",
    "Tests",
    "Decisions",
    "Data model",
]


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines


def _headings(path: Path) -> list[str]:
    return [
        match.group(1).strip()
        for line in _prose_lines(path.read_text(encoding="utf-8"))
        if (match := re.match(r"#{1,6}\s+(.*)", line))
    ]


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (hyphens and underscores kept),
    each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, seen = set(), dict[str, int]()
    for heading in _headings(path):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(path: Path) -> list[str]:
    return [
        target
        for line in _prose_lines(path.read_text(encoding="utf-8"))
        for target in LINK.findall(line)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def test_github_slug_follows_githubs_rules() -> None:
    assert github_slug("Who may do what (IAM)") == "who-may-do-what-iam"
    assert (
        github_slug("Tenants and app credentials: `bin/pixel-admin`")
        == "tenants-and-app-credentials-binpixel-admin"
    )
    assert github_slug("Speed: `make bench`") == "speed-make-bench"


def test_the_readme_is_under_150_lines() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 150


def test_the_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert first_block
    assert [line.split()[:2] for line in first_block.group(1).splitlines()] == [
        ["make", "dev"],
        ["make", "test"],
    ]
    assert "Only Python 3.13 (or pyenv, to install it) and make need to be on the machine" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    links = _links(page)
    for target in links:
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        assert linked.exists(), f"{page.name}: {target} leads to no file"
        if anchor:
            assert linked.suffix == ".md", f"{page.name}: {target} has an anchor into a non-Markdown file"
            assert anchor in _anchors(linked), f"{page.name}: {target} names no heading of {linked.name}"


def test_the_readme_links_every_page_of_docs() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in _links(README)}
    assert {page.resolve() for page in PAGES[1:]} <= linked


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda page: page.name)
def test_each_page_opens_with_a_title_and_what_it_covers(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    assert lines[1] == ""
    assert lines[2]
    assert not lines[2].startswith(("#", "```", "|", "-"))


def test_every_heading_of_the_readme_before_the_split_still_has_a_home() -> None:
    headings = {heading for page in PAGES for heading in _headings(page)}
    assert [heading for heading in HEADINGS_BEFORE_THE_SPLIT if heading not in headings] == []


def test_make_help_prints_every_target_with_nothing_left_unexpanded():
    import subprocess

    shown = subprocess.run(
        ["make", "--no-print-directory", "help"], capture_output=True, text=True, check=True
    )
    assert "make dev" in shown.stdout
    assert "make test" in shown.stdout
    assert "$" not in shown.stdout
