#!/usr/bin/env bash
# Puts the real-world test corpus where the tests look for it (tests/corpus/mod.rs
# looks in the same order):
#   1. $THULIUM_CORPUS_DIR, when set: a copy made elsewhere; only checked to exist.
#   2. ../shared/corpus beside the checkout: used as it is; nothing is fetched.
#   3. ${XDG_CACHE_HOME:-~/.cache}/thulium-mail-bridge/corpus: rebuilt here from the
#      public repositories the corpus came from, unless it is already complete.
#
#   scripts/fetch-corpus.sh            make sure the corpus is there; say where
#   scripts/fetch-corpus.sh --where    print its folder, fetch nothing (exit 1: none)
#
# The rebuild reads tests/corpus-meta/. Its own/ holds the files the team wrote
# (INDEX.tsv, README.md, each folder's SOURCE.txt or SOURCE.tsv, LICENSE, LABELS.tsv):
# no upstream has them, so they are committed and copied as they are. Every other
# file is a row of own/INDEX.tsv (the mails) or of UPSTREAM-EXTRA.tsv (expected
# results, COPYING notes, mailboxes): corpus folder, path, bytes. Each comes from the
# repository and commit that a SOURCE.tsv of its folder names for it (per file; a
# SOURCE.tsv in a subfolder covers paths under that subfolder), else from its folder's
# SOURCE.txt (`Source repository :` and `Commit :` lines), at the same relative path:
# a shallow, blob-less fetch of that one commit and a sparse checkout of exactly those
# paths, with no line-end or filter conversion. Every file's size is checked against
# its row; a mismatch is an error naming the file, and nothing is put in the cache.
#
# Override, for tests: THULIUM_CORPUS_GIT_BASE (default https://github.com), the URL
# that OWNER/NAME is appended to (file:///some/dir for local bare repositories).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(dirname "$root")/shared/corpus
cache=${XDG_CACHE_HOME:-${HOME:?}/.cache}/thulium-mail-bridge/corpus
# Beside the cache, not in it: the corpus is laid out exactly like ../shared/corpus.
stamp=$cache.description
meta=$root/tests/corpus-meta
base=${THULIUM_CORPUS_GIT_BASE:-https://github.com}
base=${base%/}
me=fetch-corpus.sh
# A repository that asks for credentials (a wrong name on GitHub) fails instead.
export GIT_TERMINAL_PROMPT=0

die() {
  echo "$me: $*" >&2
  exit 1
}

# Where the corpus is now, in the tests' order; fails when nowhere.
where() {
  if [[ -n ${THULIUM_CORPUS_DIR:-} ]]; then
    [[ -f $THULIUM_CORPUS_DIR/INDEX.tsv ]] ||
      die "THULIUM_CORPUS_DIR=$THULIUM_CORPUS_DIR holds no INDEX.tsv: it must name a copy of the corpus"
    echo "$THULIUM_CORPUS_DIR"
  elif [[ -f $shared/INDEX.tsv ]]; then
    (cd "$shared" && pwd)
  elif [[ -f $cache/INDEX.tsv ]]; then
    echo "$cache"
  else
    return 1
  fi
}

# Rows "corpus/path<TAB>bytes" of every upstream file the corpus holds.
expected_files() {
  awk -F'\t' 'FNR > 1 && NF >= 3 { print $1 "/" $2 "\t" $4 }' "$meta/own/INDEX.tsv"
  awk -F'\t' 'FNR > 1 && NF >= 3 { print $1 "/" $2 "\t" $3 }' "$meta/UPSTREAM-EXTRA.tsv"
}

# Checks every upstream file under $1 against its expected size; prints each problem.
check_sizes() {
  (cd "$1" && find . -type f -printf '%P\t%s\n') |
    awk -F'\t' '
      NR == FNR { size[$1] = $2; next }
      !($1 in size) { print $1 ": missing"; bad = 1; next }
      size[$1] != $2 { print $1 ": " size[$1] " bytes, expected " $2; bad = 1 }
      END { exit bad }' - <(expected_files)
}

# A fingerprint of the description the cache was built from: a changed one rebuilds.
description_stamp() {
  (cd "$meta" && find . -type f -print0 | sort -z | xargs -0 cksum)
}

# "corpus/path<TAB>repo<TAB>commit<TAB>upstream path" for every upstream file.
plan() {
  local source_txt corpus url repo commit
  for source_txt in "$meta"/own/*/SOURCE.txt; do
    corpus=$(basename "$(dirname "$source_txt")")
    url=$(sed -n 's/^Source repository *: *\([^ ]*\).*/\1/p' "$source_txt")
    url=${url%/}
    url=${url%.git}
    repo=${url#*://*/}
    commit=$(sed -n 's/^Commit *: *\([0-9a-f]\{40\}\).*/\1/p' "$source_txt")
    printf 'default\t%s\t%s\t%s\n' "$corpus" "$repo" "${commit:--}"
  done
  # Per-file sources: the columns are found by name (the files differ in their others).
  (cd "$meta/own" && find . -mindepth 2 -name SOURCE.tsv -printf '%P\n') |
    while IFS= read -r source_tsv; do
      prefix=$(dirname "$source_tsv")/
      awk -F'\t' -v prefix="${prefix#*/}" -v corpus="${source_tsv%%/*}" '
        FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { print "file\t" corpus "/" prefix $col["path"] "\t" $col["repo"] "\t" $col["commit"] "\t" $col["path"] }
      ' "$meta/own/$source_tsv"
    done
  expected_files | sed 's/^/want\t/'
}

# Joins the wanted files with their sources; fails naming a file that has none.
resolve() {
  plan | awk -F'\t' '
    $1 == "default" { repo[$2] = $3; commit[$2] = $4; next }
    $1 == "file" { file[$2] = $3 "\t" $4 "\t" $5; next }
    $1 == "want" {
      if ($2 in file) { print $2 "\t" file[$2]; next }
      corpus = $2; sub(/\/.*/, "", corpus); path = substr($2, length(corpus) + 2)
      if (commit[corpus] == "" || commit[corpus] == "-") {
        print "no repository and commit for " $2 " (SOURCE.txt or SOURCE.tsv)" > "/dev/stderr"
        bad = 1; next
      }
      print $2 "\t" repo[corpus] "\t" commit[corpus] "\t" path
      next
    }
    { print "unreadable description: " $0 > "/dev/stderr"; bad = 1 }
    END { exit bad }'
}

# The one message when the corpus cannot be had: what is missing, the two ways out.
unreachable() {
  local missing="the real-world corpus is missing: THULIUM_CORPUS_DIR is not set, there is no
  $shared, no complete copy in $cache,
  and $1 to rebuild it there."
  die "$missing
  Either set THULIUM_CORPUS_DIR to a copy of the corpus, or allow network access to $base
  (the public repositories named in tests/corpus-meta/own/*/SOURCE.*) so that
  scripts/fetch-corpus.sh can rebuild it."
}

# Fetches one commit of one repository into $1 and checks out only the paths on stdin.
checkout() {
  local dir=$1 repo=$2 commit=$3
  git -c init.defaultBranch=main init -q "$dir"
  git -C "$dir" remote add origin "$base/$repo"
  git -C "$dir" config core.autocrlf false
  git -C "$dir" config core.sparseCheckout true
  git -C "$dir" config core.sparseCheckoutCone false
  # Byte-exact files, whatever the repository's .gitattributes ask for.
  echo '* -text !eol -filter -ident -working-tree-encoding' >"$dir/.git/info/attributes"
  # Anchored, with glob characters escaped: exactly these paths.
  sed 's/[][*?\\]/\\&/g; s/ $/\\ /; s|^|/|' >"$dir/.git/info/sparse-checkout"
  git -C "$dir" fetch -q --depth=1 --filter=blob:none origin "$commit" ||
    die "cannot fetch commit $commit of $base/$repo"
  git -C "$dir" checkout -q --detach "$commit" ||
    die "cannot check out commit $commit of $base/$repo"
}

rebuild() {
  command -v git >/dev/null 2>&1 || unreachable "git is not installed"
  mkdir -p "$(dirname "$cache")"
  work=$(mktemp -d "$(dirname "$cache")/corpus.partial.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  resolve >"$work/plan.tsv" || die "the corpus description in $meta is incomplete"

  first=$(awk -F'\t' 'NR == 1 { print $2 }' "$work/plan.tsv")
  probe=(git ls-remote -q "$base/$first")
  if command -v timeout >/dev/null 2>&1; then probe=(timeout 60 "${probe[@]}"); fi
  "${probe[@]}" >/dev/null 2>&1 || unreachable "$base/$first cannot be reached"

  echo "== rebuilding the corpus in $cache from $base ($(wc -l <"$work/plan.tsv") files)"
  local staging=$work/corpus n=0 repo commit
  mkdir "$staging"
  while IFS=$'\t' read -r repo commit; do
    n=$((n + 1))
    awk -F'\t' -v r="$repo" -v c="$commit" '$2 == r && $3 == c { print $4 }' "$work/plan.tsv" |
      sort -u | checkout "$work/git$n" "$repo" "$commit"
    awk -F'\t' -v r="$repo" -v c="$commit" '$2 == r && $3 == c { print $1 "\t" $4 }' "$work/plan.tsv" |
      while IFS=$'\t' read -r dest upstream; do
        [[ -f $work/git$n/$upstream ]] ||
          die "$dest: no $upstream at commit $commit of $base/$repo"
        mkdir -p "$(dirname "$staging/$dest")"
        cp "$work/git$n/$upstream" "$staging/$dest"
      done
    rm -rf "$work/git$n"
  done < <(cut -f2,3 "$work/plan.tsv" | sort -u)

  cp -R "$meta/own/." "$staging/"
  problems=$(check_sizes "$staging") ||
    die "the rebuilt corpus differs from its description (nothing was put in $cache):
$problems"
  rm -rf "$cache"
  mv "$staging" "$cache"
  description_stamp >"$stamp"
  echo "== corpus: $cache (rebuilt)"
}

if [[ ${1:-} == --where ]]; then
  where || die "no corpus: set THULIUM_CORPUS_DIR, or run scripts/fetch-corpus.sh"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: scripts/fetch-corpus.sh [--where]"

if [[ -n ${THULIUM_CORPUS_DIR:-} ]]; then
  dir=$(where)
  echo "== corpus: $dir (THULIUM_CORPUS_DIR)"
elif [[ -f $shared/INDEX.tsv ]]; then
  dir=$(where)
  echo "== corpus: $dir (beside the checkout)"
elif [[ -f $cache/INDEX.tsv ]] && [[ $(description_stamp) == "$(cat "$stamp" 2>/dev/null)" ]] &&
  check_sizes "$cache" >/dev/null; then
  echo "== corpus: $cache (cached)"
else
  rebuild
fi
