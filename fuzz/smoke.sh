#!/usr/bin/env bash
# A short fuzzing run of every target, for scripts/test.sh: proves the targets still
# build and run, and gives the fuzzer a few seconds on each. Real fuzzing runs are
# longer (fuzz/README.md).
#
#   fuzz/smoke.sh            (FUZZ_SECONDS, default 5, per target)
#
# The build is a dev build without a sanitizer (FUZZ_FLAGS, default "--dev -s none"):
# about 3 minutes from nothing on two cores, where cargo-fuzz's default (release,
# AddressSanitizer) takes about 10; it runs some 100 inputs a second instead of 1000,
# plenty for a smoke run. Real runs use the default (fuzz/README.md).
#
# Installs cargo-fuzz (from crates.io) when it is missing. Needs the nightly
# toolchain, or the stable one with RUSTC_BOOTSTRAP=1 where there is no nightly.
# Seeds each target from a small fixed sample: the demo mails plus every 40th raw
# mail of the real-world corpus up to 64 KB (about 30 files), in a temp dir, so that
# fuzz/corpus (a long run's corpus) is neither needed nor touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
seconds=${FUZZ_SECONDS:-5}
read -r -a flags <<<"${FUZZ_FLAGS:---dev -s none}"

# cargo-fuzz passes -Z flags: nightly when the machine has it, else the one stable
# toolchain told to accept them (RUSTC_BOOTSTRAP=1), as a machine may have no other.
toolchain=${FUZZ_TOOLCHAIN:-nightly}
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  toolchain=stable
fi
if [[ $toolchain != nightly ]]; then
  echo "fuzz/smoke.sh: no nightly toolchain; using $toolchain with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --help >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked --quiet
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seeds="$tmp/seeds"
mkdir "$seeds"
cp "$here"/../scripts/demo-mails/*.eml "$seeds"/
if corpus=$("$here/../scripts/fetch-corpus.sh" --where 2>/dev/null); then
  awk -F'\t' 'NR > 1 && $3 == "raw-mail" && $4 + 0 <= 65536 && (n++ % 40) == 0 { print $1 "/" $2 }' \
    "$corpus/INDEX.tsv" | while IFS= read -r path; do
    if [[ -f "$corpus/$path" ]]; then cp "$corpus/$path" "$seeds/${path//\//_}"; fi
  done
else
  echo "fuzz/smoke.sh: no corpus (scripts/fetch-corpus.sh); seeding from the demo mails only"
fi
echo "fuzz/smoke.sh: $(ls "$seeds" | wc -l) seed files"

echo "== cargo +$toolchain fuzz build ${flags[*]}"
if ! cargo "+$toolchain" fuzz build "${flags[@]}" >"$tmp/build.log" 2>&1; then
  # The compiler's own errors and the disk left come last, where a CI excerpt (which
  # keeps an output's head and tail) still shows them.
  cat "$tmp/build.log"
  echo "fuzz/smoke.sh: the fuzz build failed; its errors:" >&2
  grep -E -A 12 '^error' "$tmp/build.log" |
    grep -v -E '^(Error: failed|Stack backtrace|[[:space:]]+([0-9]+:|at) )' | head -n 80 >&2 || true
  df -h "$here" >&2
  exit 1
fi
tail -n 1 "$tmp/build.log"
for target in $(cargo "+$toolchain" fuzz list); do
  echo "== fuzzing $target for ${seconds}s"
  mkdir "$tmp/$target"
  cp "$seeds"/* "$tmp/$target"/
  # -timeout is a hang guard for an unoptimized build on a busy machine, not a speed target.
  if ! cargo "+$toolchain" fuzz run "${flags[@]}" "$target" "$tmp/$target" -- \
    -dict=decide.dict -max_len=131072 -rss_limit_mb=2048 -timeout=20 \
    -max_total_time="$seconds" -print_final_stats=1 >"$tmp/$target.log" 2>&1; then
    cat "$tmp/$target.log"
    echo "fuzz/smoke.sh: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+.*DONE|Done [0-9]+ runs|stat::number_of_executed_units)' "$tmp/$target.log" || tail -n 3 "$tmp/$target.log"
done
