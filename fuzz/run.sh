#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60 s each), growing fuzz/corpus/.
# Needs cargo-fuzz (cargo install cargo-fuzz) and nightly features, which
# RUSTC_BOOTSTRAP=1 unlocks on a stable toolchain. CI does not fuzz; it replays the
# corpus (crates/chaos/tests/fuzz_corpus.rs).
#   fuzz/run.sh            every target, 60 s each
#   fuzz/run.sh 600 pex_message
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  echo "== $target ($seconds s)"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=70000 -rss_limit_mb=1024 2>&1 \
    | grep -E "^(#[0-9]+.*(DONE|pulse)|==[0-9]+==|SUMMARY|artifact)" || true
  # A crash leaves fuzz/artifacts/<target>/crash-*: stop and show it.
  if compgen -G "artifacts/$target/crash-*" > /dev/null; then
    echo "crash found in $target: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
