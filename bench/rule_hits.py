#!/usr/bin/env python3
"""How often each symbol fires on the training mail, by class: the check every content rule is chosen by.

Mature filters keep a rule only when it hits much more spam than ham (SpamAssassin's hit-frequencies over
a mass-check). This does the same on the benchmark's training directories only (spam-1, easy-ham-1 and
the first half of hard-ham-1 by file name, as bench/classifier_bench.py learns them; the test messages are
for measuring, never for choosing rules):

  `portcullis scan --offline --json` over each directory with an untrained data directory (so the
  classifier is silent and every symbol is a rule's or an analyzer's), the shipped rules plus the files
  given with --rules (copied into the data directory's rules/local/, as an operator adds rules), and one
  line per symbol: messages it fired on in each directory, its share of the spam, of all ham, and
  S/O (the share of its hits that are spam, 1.0 = never on ham).

  python3 bench/rule_hits.py --corpus DIR --work DIR --portcullis target/release/portcullis [--rules F.toml]
"""

import argparse
import collections
import json
import os
import subprocess

import classifier_validate

GROUPS = ("spam", "easy-ham", "hard-ham")


def scan(binary, corpus, work, rules):
    """{group: [scan row]} for the training directories of classifier_validate.split."""
    classifier_validate.split(corpus, work, 0.5)
    cfg, env = classifier_validate.fresh_config(work, rules=rules)
    rows = {}
    for group in GROUPS:
        out = subprocess.run([binary, "--config", cfg, "scan", "--offline", "--json",
                              os.path.join(work, "by-date", group)],
                             env=env, check=True, stdout=subprocess.PIPE).stdout
        rows[group] = [json.loads(line) for line in out.splitlines()]
    return rows


def report(rows, only):
    hits = {g: collections.Counter() for g in GROUPS}
    scores = {}
    for g in GROUPS:
        for r in rows[g]:
            for s in r["symbols"]:
                hits[g][s["name"]] += 1
                scores[s["name"]] = s["score"]
    n = {g: len(rows[g]) for g in GROUPS}
    ham = n["easy-ham"] + n["hard-ham"]
    print(f"messages: spam {n['spam']}, easy ham {n['easy-ham']}, hard ham {n['hard-ham']}")
    print(f"{'symbol':<28} {'score':>6} {'spam':>5} {'easy':>5} {'hard':>5} {'spam%':>6} {'ham%':>6} {'S/O':>5}")
    names = sorted(scores, key=lambda s: (-hits["spam"][s], s))
    for s in names:
        if only and not any(s.startswith(p) for p in only):
            continue
        sp, ez, hd = (hits[g][s] for g in GROUPS)
        spam_rate, ham_rate = sp / max(n["spam"], 1), (ez + hd) / max(ham, 1)
        so = spam_rate / (spam_rate + ham_rate) if spam_rate + ham_rate else 0.0
        print(f"{s:<28} {scores[s]:>6.1f} {sp:>5} {ez:>5} {hd:>5} {100 * spam_rate:>5.1f}% "
              f"{100 * ham_rate:>5.2f}% {so:>5.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="directory written by corpus.sh")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--portcullis", required=True, help="the binary")
    ap.add_argument("--rules", nargs="*", default=[], help="rules files added as rules/local/ files")
    ap.add_argument("--only", nargs="*", default=[], help="print only symbols starting with these")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    report(scan(args.portcullis, args.corpus, args.work, args.rules), args.only)
