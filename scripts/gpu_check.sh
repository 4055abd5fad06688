#!/usr/bin/env bash
# The GPU check, for a CUDA machine that has PyTorch and no internet, in under 8 minutes:
#   1. the tests marked `cuda` (pytest -m cuda: every rule trains one digits epoch on the GPU, the
#      microcircuit's updates equal the CPU's, a run trained on the GPU loads on a CPU, compare and the
#      quick bench run there); none of them may skip;
#   2. bioleaf bench --device cuda --json, with every peer (snnTorch, Norse, SpikingJelly);
#   3. bioleaf bench --scaling --device cuda (with the community benchmark's 16384-cell layer);
#   4. with a minute and a half left, bench/compiled_step.py --device cuda --mode reduce-overhead: the
#      circuit's time step compiled (Inductor and CUDA graphs) against the eager step; a measurement only,
#      its failure is a notice, not a failed check.
#
#   bash scripts/gpu_check.sh [OUT_DIR]     # default $OUT when set, else runs/gpu-check
#
# OUT_DIR receives gpu-check.log (everything printed), cuda-tests.xml, bench.json, scaling/ (results.json,
# results.md, scaling.png) and compiled-step.txt. PYTHON names the interpreter that has PyTorch (default
# python3). The project's other dependencies (pyproject.toml: its dependencies and the test and bench extras; usually only snntorch,
# nir, nirtorch and loguru are missing) and the bench's peers norse and spikingjelly (installed as scripts/setup.sh
# installs them, without their declared dependencies, which would replace this torch) are installed offline from
# wheels: $WHEELS, else wheels/ or .whl/ in this checkout, else ../wheels beside it (make them on a machine with
# internet: pip download --no-deps -d wheels snntorch nir nirtorch loguru norse==1.1.0 spikingjelly==2.0.0).
# The checkout itself is installed into that Python with pip install --no-deps -e .
# (when that fails, bioleaf runs from src/). Every failure ends the check with one line starting with
# "gpu_check:".
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${1:-${OUT:-runs/gpu-check}}
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-470}))

fail() { echo "gpu_check: $*" >&2; exit 1; }

command -v "$PY" >/dev/null 2>&1 || fail "no $PY on PATH (set PYTHON to the Python that has PyTorch)"
"$PY" -c 'import torch' 2>/dev/null || fail "$PY cannot import torch: this check needs PyTorch built with CUDA"
"$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null \
  || fail "torch $("$PY" -c 'import torch; print(torch.__version__)') sees no CUDA GPU (torch.cuda.is_available() is False)"
mkdir -p "$OUT_DIR/scaling" 2>/dev/null || fail "cannot create $OUT_DIR/scaling"
LOG=$OUT_DIR/gpu-check.log
: >"$LOG" || fail "cannot write $LOG"

# The distributions pyproject.toml asks for (torch aside) that this Python lacks.
missing=$("$PY" - <<'EOF'
import re, tomllib
from importlib.metadata import PackageNotFoundError, version
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["test"] + project["optional-dependencies"]["bench"]
names = [re.match(r"[A-Za-z0-9_.\-]+", r).group(0) for r in wanted]
def absent(name):
    try:
        version(name)
    except PackageNotFoundError:
        return True
    return False
print(" ".join(n for n in names if n != "torch" and absent(n)))
EOF
) || fail "cannot read the dependencies from pyproject.toml (needs Python >= 3.11)"
wheels=""
for dir in "${WHEELS:-}" wheels .whl ../wheels; do
  if [ -n "$dir" ] && [ -d "$dir" ]; then wheels=$dir; break; fi
done
if [ -n "$missing" ]; then
  [ -n "$wheels" ] || fail "missing Python packages: $missing; bring their wheels in wheels/ (pip download --no-deps -d wheels $missing) or set WHEELS"
  "$PY" -m pip install -q --no-index --find-links "$wheels" $missing >>"$LOG" 2>&1 \
    || fail "could not install $missing from $wheels: $(grep -E 'ERROR' "$LOG" | tail -1)"
fi
PEERS="norse==1.1.0 spikingjelly==2.0.0"
if ! "$PY" -c 'import norse, spikingjelly' 2>/dev/null; then
  [ -n "$wheels" ] || fail "missing the bench's peers; bring their wheels in wheels/ (pip download --no-deps -d wheels $PEERS) or set WHEELS"
  "$PY" -m pip install -q --no-deps --no-index --find-links "$wheels" $PEERS >>"$LOG" 2>&1 \
    || fail "could not install $PEERS from $wheels: $(grep -E 'ERROR' "$LOG" | tail -1)"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1; then
  echo "gpu_check: notice: pip install --no-deps -e . failed (see $LOG); running bioleaf from src/ instead" | tee -a "$LOG"
fi
"$PY" -c 'import bioleaf, snntorch, norse.torch, spikingjelly.activation_based.neuron' 2>>"$LOG" \
  || fail "bioleaf or a peer (snntorch, norse, spikingjelly) does not import: $(tail -1 "$LOG")"
{ echo "gpu_check: $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
  nvidia-smi -L 2>/dev/null || true; } | tee -a "$LOG"

# step NAME OUTPUT COMMAND...: run COMMAND with the time left; its stdout to OUTPUT, everything to the log.
step() {
  local name=$1 output=$2 left=$((DEADLINE - SECONDS)) rc
  shift 2
  [ "$left" -gt 20 ] || fail "$name: not started, the check's $((${GPU_CHECK_SECONDS:-470} / 60))-minute budget is spent"
  echo "gpu_check: $name (at most ${left}s)" | tee -a "$LOG"
  timeout "$left" "$@" 2>>"$LOG" | tee -a "$LOG" >"$output"
  rc=${PIPESTATUS[0]}
  [ "$rc" -ne 124 ] || fail "$name: ran past the check's budget (killed after ${left}s; see $LOG)"
  [ "$rc" -eq 0 ] || fail "$name: failed with exit code $rc: $(grep -v '^\s*$' "$LOG" | tail -1)"
}

step "tests marked cuda" /dev/stdout "$PY" -m pytest -m cuda -p no:cacheprovider -rs -q \
  --junitxml="$OUT_DIR/cuda-tests.xml" tests
ran=$("$PY" - "$OUT_DIR/cuda-tests.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
tests, skipped = int(suite.get("tests")), int(suite.get("skipped"))
print(tests if tests and not skipped else f"0 ({skipped} of {tests} skipped)")
EOF
)
[[ "$ran" =~ ^[1-9][0-9]*$ ]] || fail "tests marked cuda: none may skip on a GPU machine, got $ran (see $LOG)"
step "bioleaf bench --device cuda --json" "$OUT_DIR/bench.json" "$PY" -m bioleaf bench --device cuda --json
step "bioleaf bench --scaling --device cuda" /dev/stdout "$PY" -m bioleaf bench --scaling --device cuda \
  --out "$OUT_DIR/scaling"
left=$((DEADLINE - SECONDS))
if [ "$left" -gt 90 ]; then
  echo "gpu_check: bench/compiled_step.py --device cuda (at most ${left}s)" | tee -a "$LOG"
  timeout "$left" "$PY" bench/compiled_step.py --device cuda --mode reduce-overhead --rounds 10 2>>"$LOG" \
    | tee -a "$LOG" >"$OUT_DIR/compiled-step.txt" \
    || echo "gpu_check: notice: bench/compiled_step.py did not finish (see $LOG); the check goes on" | tee -a "$LOG"
else
  echo "gpu_check: notice: bench/compiled_step.py skipped, ${left}s left" | tee -a "$LOG"
fi
"$PY" - "$OUT_DIR/bench.json" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1]))
skipped = [name for name in ("norse", "spikingjelly") if r[name] != "measured"]
if skipped:
    sys.exit(f"gpu_check: bioleaf bench skipped {', '.join(skipped)} ({r[skipped[0]]})")
print(f"gpu_check: passed on {r['gpu']}: BioLeaF / snnTorch samples/s {r['bioleaf_over_snntorch']:.2f} (idealised), "
      f"{r['bioleaf_local_over_snntorch']:.2f} (fashion-mnist-local), {r['bioleaf_one_over_snntorch']:.2f} "
      f"(one presentation); BioLeaF / fastest peer ({r['fastest_peer']}) {r['bioleaf_over_fastest_peer']:.2f} "
      f"(idealised), {r['bioleaf_local_over_fastest_peer']:.2f} (local), {r['bioleaf_one_over_fastest_peer']:.2f} "
      f"(one presentation); limit efficiency {r['bioleaf_limit_efficiency']:.2f} (idealised), "
      f"{r['bioleaf_local_limit_efficiency']:.2f} (local), {r['bioleaf_one_limit_efficiency']:.2f} (one presentation); bptt / snnTorch {r['bptt_over_snntorch']:.2f}; memory T=100 / T=10: BioLeaF "
      f"{r['bioleaf_memory_ratio_T100_T10']:.2f}, bptt {r['bptt_memory_ratio_T100_T10']:.2f}")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
echo "gpu_check: $ran cuda tests passed; results in $OUT_DIR (bench.json, scaling/results.md, scaling/scaling.png)"
