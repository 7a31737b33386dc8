#!/usr/bin/env python3
"""Fits the shipped rule scores to training mail (as SpamAssassin's score generation does), and measures them.

Training mail only: the benchmark's test messages are for measuring, never for tuning. Two held-out sets
of the training directories (bench/classifier_validate.py's date split, 50/50 by default):

  A  the older half of each training directory learned, the newer half judged (the validation protocol);
  B  the newer half learned, the older half judged (the reverse: every training message is judged once,
     by a model that never learned it).

Each judged message's symbols and the action forced on it come from `portcullis scan --offline --json`
(default configuration and shipped rules; a row's score is the sum of its symbols' scores, so any other
scores can be replayed on the rows). The fit, on one set of rows:

  - free symbols: those firing on at least --min-count judged messages whose shipped score is not 0 and
    not a policy score (GTUBE, sender lists, fail-closed limits, forged-ours checks: POLICY below); every
    other symbol keeps its shipped score;
  - scores: a logistic regression in points, P(spam) = sigmoid(score - tag threshold), judged ham
    weighted --ham-weight times the judged spam (the goal prices a flagged ham far above a missed spam),
    an L2 penalty --l2 on each free score's distance from its shipped score (symbols the mail says little
    about stay near their hand-set score), fitted by projected gradient steps that keep the constraints
    a mature filter keeps: a free score keeps its shipped sign (good symbols such as BAYES_00 and
    DMARC_POLICY_ALLOW stay negative, the rest positive), the BAYES_* bands stay non-decreasing and no
    band takes back more than 3 points;
  - scale: the free scores multiplied by the factor (0.5 to 4, steps of 0.05) that misses the fewest
    judged spam with at most --max-fp of the judged ham tagged (ties: the factor nearest 1), then rounded
    to 0.1 point.

It prints, for the shipped scores and for scores fitted on each set, the tagged ham and missed spam on both
sets (fitted on A, measured on B is the check that the scores are not fitted to one split's noise; and
B on A); then a 5-fold cross-validation over A and B together (message i of a set in fold i mod 5; each
fold's errors with the scores fitted on the other four, summed per set); then the scores fitted on A and
B together: the ones to ship if the held-out figures beat the shipped scores on both sets (fewer spam
missed, no more ham tagged).

  python3 bench/classifier_fit_scores.py --corpus DIR --work DIR --portcullis target/release/portcullis
"""

import argparse
import math
import os

import classifier_validate

TAG = 4.0
BANDS = ["BAYES_00", "BAYES_05", "BAYES_20", "BAYES_40", "BAYES_50", "BAYES_60", "BAYES_80", "BAYES_95",
         "BAYES_99", "BAYES_999"]
BAND_FLOOR = -3.0  # no band takes back more than 3 points (rules/default/scores.toml)
# Scores that are policy, not evidence: never fitted.
POLICY = {"GTUBE", "SAFELISTED_SENDER", "BLOCKLISTED_SENDER", "DEADLINE_EXCEEDED", "MIME_TOO_DEEP",
          "MIME_TOO_MANY_PARTS", "TOO_MANY_HEADERS", "HEADERS_TOO_LARGE", "MIME_DECODED_TOO_LARGE",
          "RECEIVED_FORGED_OURS", "AUTH_RESULTS_FORGED", "DMARC_POLICY_REJECT", "DMARC_POLICY_QUARANTINE"}
STEPS = 1000
FOLDS = 5


def messages(rows):
    """(is spam, {symbol: shipped score}, flagged by a forced action) per judged message."""
    out = []
    for cls in ("ham", "spam"):
        for r in rows[cls]:
            syms = {s["name"]: s["score"] for s in r["symbols"]}
            forced = r["action"] != "accept" and r["score"] < TAG
            out.append((cls == "spam", syms, forced))
    return out


def shipped(msgs):
    out = {}
    for _, syms, _ in msgs:
        out.update(syms)
    return out


def errors(msgs, scores):
    """(ham tagged, ham, spam missed, spam) with `scores` replacing the shipped score of the symbols named."""
    fp = fn = ham = spam = 0
    for is_spam, syms, forced in msgs:
        flagged = forced or sum(scores.get(n, s) for n, s in syms.items()) >= TAG - 1e-9
        if is_spam:
            spam += 1
            fn += not flagged
        else:
            ham += 1
            fp += flagged
    return fp, ham, fn, spam


def project(s, hand):
    """Each score keeps its shipped sign; the bands are made non-decreasing (pool adjacent violators),
    then held at or above BAND_FLOOR."""
    for n in s:
        s[n] = min(s[n], 0.0) if hand[n] < 0 else max(s[n], 0.0)
    bands = [n for n in BANDS if n in s]
    blocks = []  # [sum, count]
    for n in bands:
        blocks.append([s[n], 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    i = 0
    for total, count in blocks:
        for n in bands[i:i + count]:
            s[n] = total / count
        i += count
    for n in bands:
        s[n] = max(s[n], BAND_FLOOR)
        s[n] = min(s[n], 0.0) if hand[n] < 0 else max(s[n], 0.0)


def fit(msgs, min_count, ham_weight, l2, max_fp):
    hand = shipped(msgs)
    count = {}
    for _, syms, _ in msgs:
        for n in syms:
            count[n] = count.get(n, 0) + 1
    free = sorted(n for n, c in count.items() if c >= min_count and hand[n] != 0 and n not in POLICY)
    rows = []  # (label +1/-1, weight, fixed points, free symbols)
    for is_spam, syms, forced in msgs:
        if forced:
            continue
        fixed = sum(v for n, v in syms.items() if n not in free)
        rows.append((1.0 if is_spam else -1.0, 1.0 if is_spam else ham_weight, fixed,
                     [n for n in syms if n in free]))
    s = {n: hand[n] for n in free}
    # Diagonal Newton steps: each score's step is its gradient over its curvature bound.
    curve = {n: 2 * l2 for n in free}
    for y, w, _, names in rows:
        for n in names:
            curve[n] += 0.25 * w
    for _ in range(STEPS):
        grad = {n: 2 * l2 * (s[n] - hand[n]) for n in free}
        for y, w, fixed, names in rows:
            margin = y * (fixed + sum(s[n] for n in names) - TAG)
            g = -y * w / (1 + math.exp(min(margin, 50)))
            for n in names:
                grad[n] += g
        for n in free:
            s[n] -= grad[n] / curve[n]
        project(s, hand)
    # The scale that misses the fewest spam within the budget of tagged ham.
    best = None
    for step in range(10, 81):
        k = step / 20
        scaled = {n: round(k * v, 1) for n, v in s.items()}
        fp, ham, fn, _ = errors(msgs, scaled)
        if fp <= math.floor(max_fp * ham):
            key = (fn, abs(k - 1))
            if best is None or key < best[0]:
                best = (key, k, scaled)
    if best is None:
        return None, None
    return best[1], best[2]


def show(label, counts):
    fp, ham, fn, spam = counts
    return f"{label}: ham tagged {fp}/{ham} ({100 * fp / ham:.2f}%), spam missed {fn}/{spam} " \
        f"({100 * fn / spam:.2f}%)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="directory written by corpus.sh")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--portcullis", required=True, help="the binary")
    ap.add_argument("--fraction", type=float, default=0.5, help="share of each training directory learned")
    ap.add_argument("--config", help="TOML appended to the configuration")
    ap.add_argument("--rules", nargs="*", default=[], help="rules files added as rules/local/ files")
    ap.add_argument("--max-fp", type=float, default=0.001, help="judged ham the fitted scores may tag")
    ap.add_argument("--min-count", type=int, default=5, help="messages a symbol fires on to be fitted")
    ap.add_argument("--ham-weight", type=float, default=3.0, help="a judged ham's weight against a spam")
    ap.add_argument("--l2", type=float, default=1.0, help="penalty: squared distance from shipped score")
    args = ap.parse_args()
    sets = {}
    for name, newer in (("A", False), ("B", True)):
        work = os.path.join(args.work, name)
        os.makedirs(work, exist_ok=True)
        classifier_validate.split(args.corpus, work, args.fraction, newer_learned=newer)
        sets[name] = messages(classifier_validate.portcullis(args.portcullis, work, args.config, args.rules))
    print("A: older half learned, newer half judged; B: newer half learned, older half judged")
    for name, msgs in sets.items():
        print(show(f"shipped scores on {name}", errors(msgs, {})))
    fitted = {}
    for name in ("A", "B", "A+B"):
        msgs = sets["A"] + sets["B"] if name == "A+B" else sets[name]
        k, scores = fit(msgs, args.min_count, args.ham_weight, args.l2, args.max_fp)
        if scores is None:
            print(f"fitted on {name}: no scale keeps the tagged ham within {args.max_fp:.1%}")
            continue
        fitted[name] = scores
        print(f"fitted on {name} (scale {k:.2f}):")
        for other in ("A", "B"):
            label = f"on {other}" + (" (the set it was fitted on)" if other in name else "")
            print("  " + show(label, errors(sets[other], scores)))
    oof = {name: [0, 0, 0, 0] for name in sets}
    tagged = [(name, i, m) for name in sets for i, m in enumerate(sets[name])]
    for fold in range(FOLDS):
        rest = [m for _, i, m in tagged if i % FOLDS != fold]
        _, scores = fit(rest, args.min_count, args.ham_weight, args.l2, args.max_fp)
        if scores is None:
            print(f"fold {fold}: no scale keeps tagged ham within {args.max_fp:.1%}; its messages left out")
            continue
        for name in sets:
            held = [m for n, i, m in tagged if n == name and i % FOLDS == fold]
            oof[name] = [a + b for a, b in zip(oof[name], errors(held, scores))]
    print(f"{FOLDS}-fold cross-validation over A and B, each message scored by a fit without it:")
    for name, counts in oof.items():
        print("  " + show(f"on {name}", counts))
    if "A+B" in fitted:
        hand = shipped(sets["A"] + sets["B"])
        print("scores fitted on A+B (shipped -> fitted):")
        for n in sorted(fitted["A+B"], key=lambda n: (n not in BANDS, BANDS.index(n) if n in BANDS else n)):
            print(f"  {n} = {hand[n]} -> {fitted['A+B'][n]}")


if __name__ == "__main__":
    main()
