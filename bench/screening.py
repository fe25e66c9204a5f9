"""Benchmark of the free-text screen (schemas/screening.py).

Prints recall and false-alarm rate on the labelled corpus (overall and per category), then the
throughput of ``Lexicon.screen`` on the corpus repeated to about 100,000 texts, next to a floor
measured in the same run: one precompiled ``re.search`` for a single word over the same texts.

    .venv/bin/python bench/screening.py [--texts 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without an installed package
    sys.path.insert(0, str(ROOT))

from schemas.screening import load_default_lexicon  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "screening_corpus.csv"


def read_corpus() -> list[tuple[str, str]]:
    """The labelled corpus as (text, label)."""
    with CORPUS.open(encoding="utf-8", newline="") as fh:
        return [(row["text"], row["label"]) for row in csv.DictReader(fh)]


def quality(rows: Sequence[tuple[str, str]]) -> None:
    """Print recall, false-alarm rate and per-category recall."""
    lexicon = load_default_lexicon()
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    false_alarms = 0
    for text, label in rows:
        found = {f.category for f in lexicon.screen(text)}
        totals[label] += 1
        if label == "ok":
            false_alarms += bool(found)
        elif label in found:
            hits[label] += 1
    positives = sum(n for label, n in totals.items() if label != "ok")
    print(f"corpus: {len(rows)} texts, {positives} positive, {totals['ok']} ok")
    n_hits = sum(hits.values())
    print(f"recall           {n_hits / positives:.3f} ({n_hits}/{positives})")
    print(f"false-alarm rate {false_alarms / totals['ok']:.3f} ({false_alarms}/{totals['ok']})")
    print("per-category recall:")
    for cat in (c.id for c in lexicon.categories if c.detector is None):
        if totals[cat]:
            print(f"  {cat:<22} {hits[cat] / totals[cat]:.3f} ({hits[cat]}/{totals[cat]})")


def best_time(func: Callable[[str], object], texts: Sequence[str], rounds: int) -> float:
    """Fastest of ``rounds`` passes of ``func`` over ``texts``, in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            func(text)
        times.append(time.perf_counter() - start)
    return min(times)


def throughput(rows: Sequence[tuple[str, str]], n_texts: int, rounds: int) -> None:
    """Print texts/s of the screen and of a one-word regex floor, and their ratio."""
    lexicon = load_default_lexicon()
    corpus = [text for text, _ in rows]
    texts = (corpus * (n_texts // len(corpus) + 1))[:n_texts]
    clean = [text for text, label in rows if label == "ok"]
    clean_texts = (clean * (n_texts // len(clean) + 1))[:n_texts]
    floor_pattern = re.compile(r"\bpolitie\b", re.IGNORECASE)

    lexicon.screen(texts[0])  # compile/warm up outside the timing
    screen_all = best_time(lexicon.screen, texts, rounds)
    screen_clean = best_time(lexicon.screen, clean_texts, rounds)
    floor_all = best_time(floor_pattern.search, texts, rounds)

    mean_len = statistics.fmean(len(t) for t in texts)
    print(f"\nthroughput on {len(texts):,} texts (corpus repeated, mean {mean_len:.0f} chars),")
    print(f"best of {rounds} rounds:")
    print(
        f"  screen (whole corpus)   {len(texts) / screen_all:>12,.0f} texts/s"
        f"  {screen_all / len(texts) * 1e6:6.2f} us/text"
    )
    print(
        f"  screen (ok texts only)  {len(clean_texts) / screen_clean:>12,.0f} texts/s"
        f"  {screen_clean / len(clean_texts) * 1e6:6.2f} us/text"
    )
    print(
        f"  floor: one re.search    {len(texts) / floor_all:>12,.0f} texts/s"
        f"  {floor_all / len(texts) * 1e6:6.2f} us/text   ({floor_pattern.pattern!r})"
    )
    print(f"  ratio screen / floor    {screen_all / floor_all:12.1f}x slower")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = read_corpus()
    quality(rows)
    throughput(rows, args.texts, args.rounds)


if __name__ == "__main__":
    main()
