#!/bin/bash
# Alternate base (c0dc2ef) and lean (this branch): the first run of census10 x10 with a fresh auto-started server.
export PATH=/work/main/.venv/bin:$PATH TF_CPP_MIN_LOG_LEVEL=2
seq=$1; n=$2; out=/tmp/scl11/ab/$seq.txt; : > $out
for i in $(seq 1 $n); do
 for side in base lean lean base; do
  [ $side = base ] && root=/tmp/scl11/base || root=/work/wt/scl11
  d=$(mktemp -d /tmp/scl11/ab/run.XXXX); mkdir -m 700 $d/sock
  la=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  (cd $root && PYTHONPATH=$root HELIX_TF_SERVER=on HELIX_TF_SERVER_DIR=$d/sock python -c "from helix_tf.cli import console_main; console_main()" run $root/benchmarks/sequences/$seq/it00.py --json --store $d/store -p scale=10 --data-dir /work/shared/data > $d/out.json 2> $d/err.txt)
  t1=$(date +%s.%N)
  hw=$(python3 -c "import json;d=json.load(open('$d/out.json'));print(d['wall_seconds'], round(sum(n.get('compute_seconds',0) for n in d['nodes']),2))")
  echo "$side wall $(python3 -c "print(round($t1-$t0,2))") helix_wall,compute $hw load $la" | tee -a $out
  (cd $root && PYTHONPATH=$root HELIX_TF_SERVER_DIR=$d/sock python -m helix_tf.cli server stop >/dev/null 2>&1)
  sleep 2; rm -rf $d
 done
done
