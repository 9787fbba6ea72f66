#!/bin/sh
# Seeds fuzz/corpus/<target>/ from a sample of the real-world corpus (where
# scripts/fetch-corpus.sh --where finds it, or CORPUS_DIR; never committed:
# fuzz/corpus is gitignored). Each sampled mail goes in as sent and with its subject
# rewritten to carry a ticket tag ([#1]), so the fuzzer starts from inputs that reach
# body extraction. Reply-parser body fixtures are wrapped in minimal headers.
#
#   fuzz/seed.sh [target ...]      (default: decide decide_plain)
#
# SEED_MAX_BYTES (default 131072) skips larger mails; SISIMAI_EVERY (default 8)
# takes every Nth bounce of the 836 sisimai ones.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${CORPUS_DIR:-$("$here/../scripts/fetch-corpus.sh" --where 2>/dev/null || true)}
max=${SEED_MAX_BYTES:-131072}
every=${SISIMAI_EVERY:-8}
[ $# -gt 0 ] || set -- decide decide_plain
if [ ! -f "$src/INDEX.tsv" ]; then
    echo "seed.sh: no corpus (scripts/fetch-corpus.sh gets it); not seeding (the fuzzer starts from nothing)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -F'\t' -v every="$every" -v max="$max" '
    NR > 1 && $4 + 0 <= max {
        if ($3 == "raw-mail") {
            if ($1 == "sisimai-set-of-emails" && (n++ % every) != 0) next
            print "raw\t" $1 "/" $2
        } else if ($3 == "body-fixture") {
            print "body\t" $1 "/" $2
        }
    }' "$src/INDEX.tsv" >"$tmp/list"
i=0
while IFS="$(printf '\t')" read -r kind path; do
    i=$((i + 1))
    f="$src/$path"
    [ -f "$f" ] || continue
    if [ "$kind" = raw ]; then
        cp "$f" "$tmp/$i.sent"
        # Drop the Subject header (and its folded lines), prepend a tagged one.
        perl -0777 -pe '
            my $eol = (/\r/ && !/\n/) ? "\r" : "\r\n";
            s/^Subject:[^\r\n]*(?:\r?\n|\r)(?:[ \t][^\r\n]*(?:\r?\n|\r))*//mi;
            $_ = "Subject: Re: [#1] fuzz seed$eol" . $_;
        ' "$f" >"$tmp/$i.tagged"
    else
        {
            printf 'From: Anna <anna@customer.example>\r\nSubject: Re: [#1] fuzz seed\r\n'
            printf 'Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n'
            printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
            cat "$f"
        } >"$tmp/$i.body"
    fi
done <"$tmp/list"
for target in "$@"; do
    mkdir -p "$here/corpus/$target"
    cp "$tmp"/* "$here/corpus/$target/" 2>/dev/null || true
    rm -f "$here/corpus/$target/list"
    echo "seed.sh: $(ls "$here/corpus/$target" | wc -l) files in fuzz/corpus/$target"
done
