"""The README's headline table is what `gistkv headline` makes of the committed metrics, never typed."""

from pathlib import Path

from gistkv.reporting.headline import END, START, headline_table, with_headline

REPO = Path(__file__).parent.parent


def test_readme_headline_is_generated_from_the_committed_metrics():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme == with_headline(readme, headline_table(REPO / "metrics")), \
        "README.md's headline differs from metrics/: run `gistkv headline --write`"


def test_readme_stays_a_user_guide():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 16_000 and readme.count(START) == readme.count(END) == 1
