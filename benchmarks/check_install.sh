#!/usr/bin/env bash
# Do the two install paths still resolve? Asks pip (dry run, this machine's pip
# settings ignored) which torch wheel each environment file would install:
# environment.yaml (CPU build, PyTorch's CPU index) and environment-cuda.yaml
# (PyPI's Linux wheel, the CUDA build). Prints the wheel per path; exits 1 if
# a path does not resolve (or its index cannot be reached from here).
set -u
PY=${PY:-python3}
status=0
check() {  # name, pip arguments...
  local name=$1; shift
  local report; report=$(mktemp)
  if "$PY" -m pip install --isolated --dry-run --ignore-installed --no-deps --quiet --report "$report" "$@" \
      >/dev/null 2>&1; then
    "$PY" - "$report" "$name" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
for item in report["install"]:
    url = item["download_info"]["url"]
    cuda = [d.split(";")[0].strip() for d in item["metadata"].get("requires_dist", []) if d.startswith("cuda-toolkit")]
    print(f"{sys.argv[2]}: resolves to {url.rsplit('/', 1)[-1]}" + (f" (needs {cuda[0]})" if cuda else " (no CUDA runtime)"))
PYEOF
  else
    echo "$name: does NOT resolve (pip $*)"; status=1
  fi
  rm -f "$report"
}
check "cpu  (environment.yaml)" --index-url https://pypi.org/simple --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
check "cuda (environment-cuda.yaml)" --index-url https://pypi.org/simple "torch==2.13.0"
exit $status
