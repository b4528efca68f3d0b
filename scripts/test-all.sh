#!/usr/bin/env bash
# `make test`: every suite in turn, each with its output in out/test-logs/SUITE.log and a line as it ends; then one
# table (suite, result, passed / failed / skipped where the suite counts them, minutes). A failing suite does not
# stop the others; the exit status is the number of failed suites (0 = all passed).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=out/test-logs
mkdir -p "$logs"
rows=()
failed=0

# Counts from a suite's log: cargo's "test result" lines, pytest's summary, and the host scripts' "N passed, M
# failed" lines, summed; "-" where the log has none.
counts() {
  python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
n = {"passed": 0, "failed": 0, "skipped": 0}
seen = False
def add(kind, k):
    global seen
    n[kind] += k
    seen = True
# cargo test
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", text):
    add("passed", int(m[1])); add("failed", int(m[2])); add("skipped", int(m[3]))
# pytest's last line: "28 passed, 1 failed, 2 skipped in 3.1s"
for m in re.finditer(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s", text, re.M):
    for k, word in re.findall(r"(\d+) (\w+)", m[1]):
        kind = {"passed": "passed", "failed": "failed", "error": "failed", "errors": "failed", "skipped": "skipped"}.get(word)
        if kind:
            add(kind, int(k))
# ImageJ macros ("[headless] PASS ..."), the C ABI under valgrind, ctest, the C++ example, bioimageio test
for m in re.finditer(r"^\s*\[[\w-]+\] (PASS|FAIL) ", text, re.M):
    add("passed" if m[1] == "PASS" else "failed", 1)
for m in re.finditer(r"^C ABI \(no network\): (\d+) passed, (\d+) failed", text, re.M):
    add("passed", int(m[1])); add("failed", int(m[2]))
for m in re.finditer(r"tests passed, (\d+) tests failed out of (\d+)", text):
    add("passed", int(m[2]) - int(m[1])); add("failed", int(m[1]))
add("passed", len(re.findall(r"^C\+\+: all checks passed", text, re.M))) if "C++: all checks passed" in text else None
for m in re.finditer(r"^bioimageio test (passed|failed): ", text, re.M):
    add("passed" if m[1] == "passed" else "failed", 1)
if "fails bioimageio test, as it must" in text:
    add("passed", 1)
print(f"{n['passed']} / {n['failed']} / {n['skipped']}" if seen else "-")
EOF
}

run_suite() {  # NAME COMMAND...
  local name=$1; shift
  local log=$logs/$name.log start=$SECONDS
  echo "== $name: $* (log: $log)"
  "$@" > "$log" 2>&1
  local status=$?
  local minutes result
  minutes=$(awk -v s=$((SECONDS - start)) 'BEGIN { printf "%.1f", s / 60 }')
  if [ $status -eq 0 ]; then result=passed; else result="FAILED ($status)"; failed=$((failed + 1)); fi
  echo "   $name $result in $minutes min"
  [ $status -eq 0 ] || tail -60 "$log" | sed 's/^/   | /'
  rows+=("$(printf '%-12s %-12s %-22s %6s' "$name" "$result" "$(counts "$log")" "$minutes")")
}

run_suite build cargo build --lib --features train
run_suite rust cargo test --all-targets --features train
run_suite hosts-setup scripts/setup-hosts.sh
run_suite cpp scripts/test-cpp.sh
run_suite napari scripts/test-napari.sh
run_suite bioimageio scripts/test-bioimageio.sh
run_suite imagej scripts/test-imagej.sh

echo
printf '%-12s %-12s %-22s %6s\n' suite result "passed / failed / skip" min
for row in "${rows[@]}"; do echo "$row"; done
echo "logs: $logs/"
exit $failed
