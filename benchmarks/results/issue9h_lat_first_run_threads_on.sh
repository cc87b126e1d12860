#!/bin/bash
# A/B: auto-server first run (HELIX_TF_SERVER=on, fresh server dir, fresh store) of census10 it00 x10; side "thr" imports TF+Keras in a thread beside Beam/pandas in preload.
cd /work/wt/lat12; export PYTHONPATH=$PWD PATH=/work/main/.venv/bin:$PATH TF_CPP_MIN_LOG_LEVEL=2
out=$1; n=$2
for i in $(seq 1 $n); do for side in base thr thr base; do
 d=$(mktemp -d /tmp/lat12/r.XXXX); mkdir -m 700 $d/sock; la=$(cut -d' ' -f1 /proc/loadavg)
 [ $side = thr ] && t=1 || t=0
 t0=$(date +%s.%N)
 LAT_PRELOAD_THREAD=$t HELIX_TF_SERVER=on HELIX_TF_SERVER_DIR=$d/sock timeout 300 python /tmp/lat12/trace_entry.py run benchmarks/sequences/census10/it00.py --json --store $d/store -p scale=10 --data-dir /work/shared/data > $d/out.json 2> $d/err.txt
 t1=$(date +%s.%N)
 python3 - "$side" "$la" "$t0" "$t1" "$d" >> $out <<'PY'
import json,sys
side,la,t0,t1,d=sys.argv[1:]
r=json.load(open(d+"/out.json")); tr=[l for l in open(d+"/err.txt") if l.startswith("TRACE")]
print(json.dumps({"mode":"on","side":side,"wall":round(float(t1)-float(t0),2),"helix":r["wall_seconds"],"load":float(la),"metrics":r["metrics"],"trace":tr[-1].strip() if tr else None}))
PY
 tail -1 $out | cut -c1-120
 HELIX_TF_SERVER_DIR=$d/sock python -m helix_tf.cli server stop >/dev/null 2>&1; sleep 2; rm -rf $d
done; done
