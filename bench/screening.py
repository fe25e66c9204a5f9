"""Benchmark of the free-text screen (schemas/screening.py, schemas/normalise.py, schemas/fuzzy.py).

Prints recall and false-alarm rate on the general labelled corpus (tests/data/screening_corpus.csv,
free text) and on the evasion corpus (tests/data/screening_evasion.toml: disguised terms, grouped
BSNs, and clean names, streets, places, schools and remarks, each screened with its own field's
screen from the convenant file), then the throughput of the screen on each corpus repeated to about
100,000 texts, next to floors measured in the same run over the same texts:

* ``casefold+in``: ``str.casefold()`` and one ``in`` test for a single word (the cheapest pass
  that looks at every character),
* ``plain lexicon regex``: the lexicon's terms as one plain case-insensitive alternation per
  category, searched on the NFKC text (the screen without prefilter, folding, variants or fuzzy
  words: roughly what screening cost before the normaliser).

    .venv/bin/python bench/screening.py [--texts 100000] [--rounds 3]

Run with PYTHONPATH pointing at an older checkout to measure that one (``before``): the evasion
corpus is then screened as that checkout's validator did (names and addresses for BSNs only).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import time
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path and not os.environ.get("PYTHONPATH"):  # run without an installed package
    sys.path.insert(0, str(ROOT))

from schemas import load_convenants  # noqa: E402
from schemas.screening import Lexicon, load_default_lexicon  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "screening_corpus.csv"
EVASION = ROOT / "tests" / "data" / "screening_evasion.toml"
CONVENANT = "thuiszitters-midden-gelre"
FREE_TEXT = "reden_verzuim"

Screen = Callable[[str], Any]


def read_corpus() -> list[tuple[str, str, str]]:
    """The general labelled corpus as (text, label, field); every text is free text."""
    with CORPUS.open(encoding="utf-8", newline="") as fh:
        return [(row["text"], row["label"], FREE_TEXT) for row in csv.DictReader(fh)]


def read_evasion() -> list[tuple[str, str, str]]:
    """The evasion corpus as (text, label, field); label "ok" for clean cases."""
    with EVASION.open("rb") as fh:
        cases = tomllib.load(fh)["case"]
    return [(c["text"], "ok" if c["expect"] == "clean" else c["expect"], c.get("field", FREE_TEXT)) for c in cases]


def field_screens(lexicon: Lexicon) -> dict[str, Screen]:
    """Each screened text field's screen, by dotted path, as the validator builds it."""
    convenant = load_convenants()[CONVENANT]
    specs = {name: spec for name, spec in convenant.fields.items()}
    specs |= {f"{name}.{sub.name}": sub for name, spec in convenant.fields.items() for sub in spec.fields}
    screens: dict[str, Screen] = {}
    for path, spec in specs.items():
        if not spec.screen:
            continue
        if hasattr(lexicon, "screener"):
            screens[path] = lexicon.screener(spec.screen, getattr(spec, "screen_exempt", ()))
        else:  # an older checkout: "full" or BSN only
            screens[path] = lexicon.screen if spec.screen == "full" else lexicon.screen_bsn_only
    return screens


def quality(name: str, rows: Sequence[tuple[str, str, str]], screens: dict[str, Screen], per_category: bool) -> None:
    """Print recall, false-alarm rate and (optionally) per-category recall."""
    lexicon = load_default_lexicon()
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    false_alarms = 0
    for text, label, field in rows:
        found = {f.category for f in screens[field](text)}
        totals[label] += 1
        if label == "ok":
            false_alarms += bool(found)
        elif label in found:
            hits[label] += 1
    positives = sum(n for label, n in totals.items() if label != "ok")
    n_hits = sum(hits.values())
    print(f"{name}: {len(rows)} texts, {positives} positive, {totals['ok']} ok")
    print(f"  recall           {n_hits / positives:.3f} ({n_hits}/{positives})")
    print(f"  false-alarm rate {false_alarms / totals['ok']:.3f} ({false_alarms}/{totals['ok']})")
    if per_category:
        print("  per-category recall:")
        for cat in (c.id for c in lexicon.categories):
            if totals[cat]:
                print(f"    {cat:<22} {hits[cat] / totals[cat]:.3f} ({hits[cat]}/{totals[cat]})")


DUTCH_WORDS = Path("/usr/share/dict/dutch")  # Debian's wdutch, when installed


def fuzzy_neighbours(lexicon: Lexicon) -> None:
    """How many words of the Dutch word list only the fuzzy lookup flags (its false-alarm surface).

    Uses the lexicon's internals (the fuzzy index and the exact matcher) to tell the two apart.
    """
    if not DUTCH_WORDS.exists() or not hasattr(lexicon, "_fuzzy"):
        print("\nfuzzy: no Dutch word list (apt-get install wdutch) or no fuzzy lookup in this checkout")
        return
    from schemas.normalise import fold
    words = {w.strip().lower() for w in DUTCH_WORDS.read_text(encoding="utf-8", errors="replace").split()}
    words = {w for w in words if w.isalpha()}
    fuzzy_only = []
    for word in sorted(words):
        folded = fold(word).lower()
        fuzzy = {category for category, _, _ in lexicon._fuzzy.search(folded)}
        if not fuzzy:
            continue
        exact: dict[str, str] = {}
        lexicon._match(folded, folded, exact, None, frozenset())
        if not fuzzy & exact.keys():
            fuzzy_only.append(word)
    print(f"\nfuzzy: {len(fuzzy_only)} of {len(words):,} words of the Dutch word list (wdutch) are flagged by the")
    print(f"fuzzy lookup alone, not by the exact terms: {', '.join(fuzzy_only[:60])}")


def best_time(func: Screen, texts: Sequence[str], rounds: int) -> float:
    """Fastest of ``rounds`` passes of ``func`` over ``texts``, in seconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            func(text)
        times.append(time.perf_counter() - start)
    return min(times)


def plain_lexicon_regex(lexicon: Lexicon) -> Screen:
    """The lexicon as one plain alternation per category on NFKC text (no prefilter, no folding)."""
    patterns = []
    for cat in lexicon.categories:
        if cat.detector:
            continue
        branches = [f"(?:{t})" for t in cat.terms] + [f"(?-i:{t})" for t in cat.terms_case_sensitive]
        patterns.append(re.compile(r"(?<!\w)(?:" + "|".join(branches) + r")(?!\w)", re.IGNORECASE))

    def scan(text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text)
        return [p.pattern for p in patterns if p.search(text)]

    return scan


def throughput(name: str, rows: Sequence[tuple[str, str, str]], screens: dict[str, Screen], n_texts: int,
               rounds: int) -> None:
    """Print texts/s and MB/s of the screen next to the floors, and their ratios."""
    lexicon = load_default_lexicon()
    repeated = (list(rows) * (n_texts // len(rows) + 1))[:n_texts]
    texts = [text for text, _, _ in repeated]
    pairs = [(screens[field], text) for text, _, field in repeated]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    def screen_all() -> float:
        start = time.perf_counter()
        for screen, text in pairs:
            screen(text)
        return time.perf_counter() - start

    screen_all()  # compile/warm up outside the timing
    screen_time = min(screen_all() for _ in range(rounds))
    casefold_time = best_time(lambda t: "politie" in t.casefold(), texts, rounds)
    plain = plain_lexicon_regex(lexicon)
    plain_time = best_time(plain, texts, max(1, rounds - 1))

    mean_len = statistics.fmean(len(t) for t in texts)
    print(f"\n{name}: throughput on {len(texts):,} texts (corpus repeated, mean {mean_len:.0f} chars),")
    print(f"best of {rounds} rounds:")
    for label, seconds in (
        ("screen", screen_time),
        ("floor: casefold+in", casefold_time),
        ("floor: plain lexicon regex", plain_time),
    ):
        print(
            f"  {label:<27} {len(texts) / seconds:>11,.0f} texts/s  {megabytes / seconds:7.2f} MB/s"
            f"  {seconds / len(texts) * 1e6:7.2f} us/text"
        )
    print(f"  ratio screen / casefold+in        {screen_time / casefold_time:8.1f}x slower")
    print(f"  ratio screen / plain lexicon regex {screen_time / plain_time:7.2f}x")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cpus")
    screens = field_screens(load_default_lexicon())
    general, evasion = read_corpus(), read_evasion()
    quality("general corpus (free text)", general, screens, per_category=True)
    quality("evasion corpus (each field's own screen)", evasion, screens, per_category=False)
    fuzzy_neighbours(load_default_lexicon())
    throughput("general corpus", general, screens, args.texts, args.rounds)
    throughput("evasion corpus", evasion, screens, args.texts, args.rounds)


if __name__ == "__main__":
    main()
