"""The documentation keeps up with the code: every long option of every command, every metric a run
logs, and every link from README.md and between the pages of docs/ lead somewhere."""

import argparse
import re
from pathlib import Path

import torch

from bench import parser as bench_parser
from bench import record
from bench.config import RunConfig
from bench.engine import train
from bench.privacy import AttackResult
from policies import Mode
from reports import cli as reports_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```.*?^```", re.S | re.M)  # code blocks: their `#` lines are no headings
LINK = re.compile(r"\]\(([^)\s]+)\)")


def docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command line of the project, by name: `bench <sub>` for each subcommand that
    bench.parser's parser has, and `reports`."""
    found = {}
    for action in bench_parser.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            found |= {f"bench {name}": parser for name, parser in action.choices.items()}
    return found | {"reports": reports_cli.build_parser()}


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings
            if s.startswith("--") and s != "--help"}


def test_every_long_option_of_every_command_is_documented():
    text = docs_text()
    found = commands()
    assert {"bench run", "bench sweep", "bench serve", "reports"} <= set(found)
    missing = [f"{name} {option}" for name, parser in sorted(found.items()) for option in sorted(long_options(parser))
               if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)]
    assert not missing, f"options no page of docs/ names: {', '.join(missing)}"


class Names:
    """A Sink that keeps the name of every metric it is given, and the modes of the epochs."""

    def __init__(self):
        self.names: set[str] = set()
        self.modes: set[int] = set()
        self.epochs: list[dict[str, float]] = []
        self.final: dict[str, float] = {}

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.names |= set(metrics)
        self.modes |= {int(v) for k, v in metrics.items() if k == "mode" or k.startswith("mode/")}
        self.epochs.append(metrics)

    def log_final(self, metrics: dict[str, float]) -> None:
        self.names |= set(metrics)
        self.final = metrics


def logged(**overrides) -> Names:
    """The metric names of a tiny real run on synthetic data, with a link model and a validation slice."""
    cfg = RunConfig(**(dict(model="smallcnn", width=0.5, cut=2, dataset="synthetic", train_subset=300,
                            test_subset=100, epochs=3, batch_size=64, val_fraction=0.2, uplink_mbit=10.0,
                            downlink_mbit=50.0, rtt_ms=20.0) | overrides))
    sink = Names()
    train(cfg, sink, progress=False)
    return sink


def documented_metrics() -> tuple[set[str], list[re.Pattern]]:
    """The names metrics.md gives in backticks, and those with a placeholder (`mode/client_<k>`) as patterns."""
    names = set(re.findall(r"`([^`\s]+)`", (DOCS / "metrics.md").read_text()))
    patterns = [re.compile("[^/]+".join(re.escape(part) for part in re.split(r"<[^<>/]+>", name)))
                for name in names if re.search(r"<[^<>/]+>", name)]
    return names, patterns


def test_every_metric_a_run_logs_is_in_metrics_md():
    always = logged(policy="always")
    gated = logged(policy="loss_threshold", policy_args={"threshold": 100.0}, clients=2)
    assert always.modes == {Mode.FULL}
    assert gated.modes == {Mode.FULL, Mode.FORWARD, Mode.CACHED}
    assert "mode/client_1" in gated.names  # several clients log per-client metrics
    # A run of several seeds: the means under the same names, `_std` of every final, mean epochs.
    seeds = (set(record.summarize([gated.final, gated.final]))
             | {k for e in record.mean_epochs([gated.epochs, gated.epochs]) for k in e})
    attack = AttackResult(0.0, 0.0, 0.0, torch.zeros(0), torch.zeros(0))
    privacy = set(attack.metrics()) | set(attack.metrics("privacy/shuffled_"))
    names, patterns = documented_metrics()
    logged_names = always.names | gated.names | seeds | privacy
    missing = sorted(n for n in logged_names if n not in names and not any(p.fullmatch(n) for p in patterns))
    assert not missing, f"metrics that docs/metrics.md does not name: {', '.join(missing)}"


def anchors(page: Path) -> set[str]:
    """The fragments of a page's headings, as GitHub makes them."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path) -> list[str]:
    """The links of `page` to a Markdown page of this repository that does not exist, or to a heading
    that page does not have."""
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if "://" in target:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.suffix == ".md":
            continue
        if not linked.is_file() or (fragment and fragment not in anchors(linked)):
            broken.append(f"{page.relative_to(ROOT)} -> {target}")
    return broken


def test_every_link_from_the_readme_to_docs_resolves():
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text()) if t.startswith("docs/")]
    assert {t.partition("#")[0] for t in targets} == {f"docs/{p.name}" for p in DOCS.glob("*.md")}  # every page
    assert not broken_links(ROOT / "README.md")


def test_every_link_between_the_pages_of_docs_resolves():
    assert not [b for page in sorted(DOCS.glob("*.md")) for b in broken_links(page)]
