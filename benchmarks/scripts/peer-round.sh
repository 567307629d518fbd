#!/bin/bash
# One round of W6, W7 (threadgrad and PyTorch side by side) and W1, run alone on the machine:
#   bash benchmarks/scripts/peer-round.sh   (after a build; PyTorch from Debian python3-torch)
cd "$(dirname "$0")/../.."
# Both sides open the same OpenBLAS (threadgrad's native matmul, PyTorch's products): give them the
# same AVX-512 kernels where the CPU has them (run.ts does the same through peerEnv).
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
CLI="node packages/cli/dist/bin.js"
PEER="/usr/bin/python3 benchmarks/pytorch/peer.py"
uptime
for r in 1 2 3; do
  echo "== W6 round $r"
  $CLI bench --model cnn --workers 1,2 --json 2>/dev/null | tail -1 | node -e 'const j=JSON.parse(require("fs").readFileSync(0));console.log("threadgrad W6", j.results.map(x=>x.workers+"w "+x.samplesPerSec.toFixed(0)).join(", "), "eff", j.scalingEfficiency.toFixed(3))'
  $PEER --workload w6 2>/dev/null | node -e 'for (const l of require("fs").readFileSync(0,"utf8").split("\n")) if (l.startsWith("{")) { const j=JSON.parse(l); console.log(j.impl, j.median.toFixed(0), "min", j.min.toFixed(0), "max", j.max.toFixed(0)); }'
done
echo "== W7"
$CLI bench --model chargpt --workers 1,2 --json 2>/dev/null | tail -1 | node -e 'const j=JSON.parse(require("fs").readFileSync(0));console.log("threadgrad W7 (" + j.matmul + ")", j.results.map(x=>x.workers+"w "+x.tokensPerSec.toFixed(0)+" tok/s").join(", "), "eff", j.scalingEfficiency.toFixed(3))'
$PEER --workload w7 2>/dev/null | node -e 'for (const l of require("fs").readFileSync(0,"utf8").split("\n")) if (l.startsWith("{")) { const j=JSON.parse(l); console.log(j.impl, j.median.toFixed(0), j.unit); }'
for r in 1 2 3; do
  echo "== W1 round $r"
  $CLI bench --workers 1,2 --json 2>/dev/null | tail -1 | node -e 'const j=JSON.parse(require("fs").readFileSync(0));console.log("threadgrad W1", j.results.map(x=>x.workers+"w "+x.samplesPerSec.toFixed(0)+" update "+x.breakdown.updateMs.toFixed(2)+"ms").join(", "), "eff", j.scalingEfficiency.toFixed(3))'
done
uptime
