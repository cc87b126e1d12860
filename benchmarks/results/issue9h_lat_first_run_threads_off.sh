#!/bin/bash
# A/B: --no-server first run of census10 it00 x10 into a fresh store; side "thr" starts a thread importing TF+Keras when the engine loads.
cd /work/wt/lat12; export PYTHONPATH=$PWD PATH=/work/main/.venv/bin:$PATH TF_CPP_MIN_LOG_LEVEL=2
out=$1; n=$2
for i in $(seq 1 $n); do for side in base thr thr base; do
 d=$(mktemp -d /tmp/lat12/r.XXXX); la=$(cut -d' ' -f1 /proc/loadavg)
 [ $side = thr ] && t=1 || t=0
 t0=$(date +%s.%N)
 LAT_THREAD=$t HELIX_TF_SERVER=off timeout 300 python /tmp/lat12/trace_entry.py run benchmarks/sequences/census10/it00.py --json --store $d/store -p scale=10 --data-dir /work/shared/data > $d/out.json 2> $d/err.txt
 t1=$(date +%s.%N)
 python3 - "$side" "$la" "$t0" "$t1" "$d" >> $out <<'PY'
import json,sys
side,la,t0,t1,d=sys.argv[1:]
r=json.load(open(d+"/out.json")); tr=[l for l in open(d+"/err.txt") if l.startswith("TRACE")]
print(json.dumps({"side":side,"wall":round(float(t1)-float(t0),2),"helix":r["wall_seconds"],"load":float(la),"metrics":r["metrics"],"trace":tr[-1].strip() if tr else None}))
PY
 tail -1 $out | cut -c1-200; rm -rf $d
done; done
