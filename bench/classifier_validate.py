#!/usr/bin/env python3
"""Validation on training mail only: the protocol every classifier and band-score change is chosen by.

The benchmark (bench/classifier_bench.py) learns older mail and judges newer mail: spam-1, easy-ham-1 and
the first half of hard-ham-1 to learn; spam-2, easy-ham-2 and the other half to judge. Its test messages
are for measuring, never for tuning. This script builds the same situation inside the training set:

  each training directory (spam-1; easy-ham-1; hard-ham-1's first half by file name, as the benchmark
  takes it) is sorted by its messages' Date: header (a message without a readable date takes the date of
  the message before it in file order); the older FRACTION (default 0.5) of each is learned, the newer
  rest judged. 0.5 is the split the shipped choices were made on: it looks like the test set (about as
  much spam missed); 0.7 is too easy to tell choices apart, and 0.3 learns fewer spam than the
  classifier's minimum (bench/RESULTS-classifier.md, "Validation protocol").

It writes the split to WORK/by-date/{spam,easy-ham,hard-ham}/ (files renamed NNNNN-<name>, so name order is
date order: `crates/classifier/examples/eval.rs` with `FOLDS=0 FRACTION=0.5` over these three directories
learns and judges exactly the same messages) and WORK/{learn,judge}/{spam,ham}/, then runs the real
thing: `portcullis learn` (spam, then ham) into a fresh data directory and `portcullis scan --offline
--json` over the judged mail, with the default configuration and shipped rules unless --config names
another. It prints:

  - the verdict (tag or more) and the classifier alone (BAYES_95 or higher): ham flagged, spam missed;
  - the classifier's spam missed at 0.1%, 0.3% and 1% of judged ham flagged (by its raw score);
  - how many judged ham and spam fall in each BAYES_* band;
  - with --bands, the band scores that miss the fewest judged spam while flagging at most --max-fp of the
    judged ham, other checks' scores as the scan gave them (the search of bench/classifier_bands.py),
    and the verdict with those scores.

  python3 bench/classifier_validate.py --corpus DIR --work DIR --portcullis target/release/portcullis
"""

import argparse
import email.utils
import json
import os
import re
import shutil
import subprocess
import sys

import classifier_bands

SOURCES = {"spam": ["spam-1"], "easy-ham": ["easy-ham-1"], "hard-ham": ["hard-ham-1"]}
SPAM_BANDS = ("BAYES_95", "BAYES_99", "BAYES_999")
SHOW_FLAGGED = 10  # judged ham flagged by the verdict, listed with their symbols
HEADER_END = re.compile(rb"\r?\n\r?\n")


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"From "):
        raw = raw[raw.index(b"\n") + 1:]
    return raw


def date_of(raw):
    """The Date: header as a Unix time, or None."""
    end = HEADER_END.search(raw)
    head = raw[: end.start() if end else len(raw)].decode("latin-1")
    m = re.search(r"^Date:[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.MULTILINE | re.IGNORECASE)
    if not m:
        return None
    try:
        return email.utils.parsedate_to_datetime(" ".join(m.group(1).split())).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def split(corpus, work, fraction, newer_learned=False):
    """Write the date-sorted directories and the learn/judge split; returns {(phase, class): [paths]}.
    The older `fraction` of each directory is learned, or with `newer_learned` the newer `fraction` (the
    reverse split bench/classifier_fit_scores.py checks fitted scores on)."""
    for d in ("by-date", "learn", "judge"):
        shutil.rmtree(os.path.join(work, d), ignore_errors=True)
    sets = {(p, c): [] for p in ("learn", "judge") for c in ("spam", "ham")}
    for group, dirs in SOURCES.items():
        files = [os.path.join(corpus, d, f) for d in dirs for f in sorted(os.listdir(os.path.join(corpus, d)))]
        if group == "hard-ham":
            files = files[: len(files) // 2]  # the benchmark's training half
        dated, last = [], float("-inf")
        for i, path in enumerate(files):
            raw = read(path)
            t = date_of(raw)
            last = t if t is not None else last
            dated.append((last, i, path, raw))
        dated.sort(key=lambda x: (x[0], x[1]))
        out = os.path.join(work, "by-date", group)
        os.makedirs(out)
        cut = int(len(dated) * fraction)
        if newer_learned:
            cut = len(dated) - cut
        cls = "spam" if group == "spam" else "ham"
        for rank, (_, _, path, raw) in enumerate(dated):
            name = f"{rank:05d}-{os.path.basename(path)}"
            dst = os.path.join(out, name)
            with open(dst, "wb") as f:
                f.write(raw)
            phase = "learn" if (rank < cut) != newer_learned else "judge"
            d = os.path.join(work, phase, cls)
            os.makedirs(d, exist_ok=True)
            os.link(dst, os.path.join(d, f"{group}-{name}"))
            sets[(phase, cls)].append(dst)
    return sets


def fresh_config(work, config=None, rules=()):
    """A fresh data directory under `work` with `rules` as its rules/local/ files, and the configuration
    file naming it (with `config` appended); returns (configuration path, environment without
    PORTCULLIS_ overrides)."""
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    local = os.path.join(data, "rules", "local")
    os.makedirs(local)
    for path in rules:
        shutil.copy(path, local)
    cfg = os.path.join(work, "portcullis.toml")
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{data}"\n')
        if config:
            with open(config) as extra:
                f.write(extra.read())
    return cfg, {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}


def portcullis(binary, work, config, rules=()):
    cfg, env = fresh_config(work, config, rules)
    base = [binary, "--config", cfg]
    for cls in ("spam", "ham"):
        subprocess.run(base + ["learn", f"--{cls}", os.path.join(work, "learn", cls)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    rows = {}
    for cls in ("ham", "spam"):
        out = subprocess.run(base + ["scan", "--offline", "--json", os.path.join(work, "judge", cls)], env=env,
                             check=True, stdout=subprocess.PIPE).stdout
        rows[cls] = [json.loads(line) for line in out.splitlines()]
    return rows


def bayes(row):
    """(band symbol, its score, the classifier's raw score) of one scan row; (None, 0, None) if silent."""
    for s in row["symbols"]:
        if s["name"].startswith("BAYES_"):
            m = re.search(r"\(score (-?[0-9.]+)", s["reason"])
            return s["name"], s["score"], float(m.group(1)) if m else None
    return None, 0.0, None


def pct(n, d):
    return f"{n}/{d} ({100 * n / max(d, 1):.2f}%)"


def report(rows, tag, max_fp, search):
    ham, spam = rows["ham"], rows["spam"]
    fp = sum(r["action"] != "accept" for r in ham)
    fn = sum(r["action"] == "accept" for r in spam)
    print(f"verdict (tag or more):        ham flagged {pct(fp, len(ham))}, spam missed {pct(fn, len(spam))}")
    for r in [r for r in ham if r["action"] != "accept"][:SHOW_FLAGGED]:
        symbols = " ".join(f"{s['name']}({s['score']:g})" for s in r["symbols"])
        print(f"  flagged ham {os.path.basename(r['path'])}: {r['score']:.1f} {symbols}")
    fp = sum(bayes(r)[0] in SPAM_BANDS for r in ham)
    fn = sum(bayes(r)[0] not in SPAM_BANDS for r in spam)
    print(f"classifier alone (BAYES_95+): ham flagged {pct(fp, len(ham))}, spam missed {pct(fn, len(spam))}")
    hs = sorted((bayes(r)[2] for r in ham if bayes(r)[2] is not None), reverse=True)
    ss = [bayes(r)[2] for r in spam]
    if hs:
        for per_mille in (1, 3, 10):
            th = hs[min(len(hs) * per_mille // 1000, len(hs) - 1)]
            missed = sum(1 for s in ss if s is None or s <= th)
            print(f"classifier at <= {per_mille / 10:.1f}% ham flagged (raw score > {th:.2f}): "
                  f"spam missed {pct(missed, len(ss))}")
    names = [n for _, n in classifier_bands.BANDS]
    count = {c: {n: sum(bayes(r)[0] == n for r in rows[c]) for n in names} for c in rows}
    print("band      " + " ".join(f"{n[6:]:>5}" for n in names))
    for c in ("ham", "spam"):
        print(f"{c:<9} " + " ".join(f"{count[c][n]:>5}" for n in names))
    if not search:
        return
    # Rows for the band search: each message's score without its BAYES_* symbol, and whether an action
    # was forced below the tag threshold.
    sets = []
    for c in ("ham", "spam"):
        for r in rows[c]:
            name, score, _ = bayes(r)
            if name is None:
                continue
            sets.append((c == "spam", names.index(name), r["score"] - score,
                         r["action"] != "accept" and r["score"] < tag))
    best = classifier_bands.search([sets], [max_fp])
    if best is None:
        print(f"band search: no band scores keep ham flagged within {max_fp:.1%}")
        return
    fp, fn = classifier_bands.errors(sets, best)
    print("band search: " + ", ".join(f"{n} = {s}" for n, s in zip(names, best)))
    print(f"  verdict with them: ham flagged {fp}, spam missed {fn}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="directory written by corpus.sh")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--portcullis", help="the binary (without it: only write the split)")
    ap.add_argument("--fraction", type=float, default=0.5, help="older share of each directory learned")
    ap.add_argument("--reverse", action="store_true", help="learn the newer FRACTION, judge the older rest")
    ap.add_argument("--config", help="TOML appended to the configuration (e.g. rule or band overrides)")
    ap.add_argument("--rules", nargs="*", default=[], help="rules files added as rules/local/ files")
    ap.add_argument("--bands", action="store_true", help="search band scores on the judged mail")
    ap.add_argument("--max-fp", type=float, default=0.001, help="judged ham the band search may flag")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    sets = split(args.corpus, args.work, args.fraction, args.reverse)
    print(f"learn: {len(sets[('learn', 'spam')])} spam, {len(sets[('learn', 'ham')])} ham; "
          f"judge: {len(sets[('judge', 'spam')])} spam, {len(sets[('judge', 'ham')])} ham ({'newer' if args.reverse else 'older'} "
          f"{args.fraction:.0%} of each training directory by Date: learned)", flush=True)
    if not args.portcullis:
        return
    rows = portcullis(args.portcullis, args.work, args.config, args.rules)
    report(rows, classifier_bands.TAG, args.max_fp, args.bands)


if __name__ == "__main__":
    main()
