"""Served approx/exact census x10 runs, cold and warm, with HELIX_TF_PROFILE."""
import json, os, sys, time, shutil, tempfile
from pathlib import Path
from benchmarks._server import warm_server
from benchmarks._proc import run_helix_json
from benchmarks.approx_fidelity import VARIANTS, _template
out = Path(sys.argv[1]); out.mkdir(exist_ok=True)
data = "/work/shared/data"
def args(v, approx):
    a = [str(v.config)] + sum((["-p", p] for p in v.params), []) + ["-p", "scale=10", "--data-dir", data]
    return a + (["--approx"] if approx else [])
with warm_server() as env:
    # warm-up run (server trainer first trace)
    run_helix_json(args(VARIANTS["census"][0], True), env=env)
    tmpl = _template("census", 10, data, env)
    for state in ("cold", "warm"):
        for i, v in enumerate(VARIANTS["census"][:4]):
            for approx in (False, True):
                e = dict(env); e["HELIX_TF_PROFILE"] = str(out / f"{state}-{i}-{'a' if approx else 'x'}.prof")
                m, j = run_helix_json(args(v, approx), env=e, template=tmpl if state == "warm" else None)
                nodes = {n["name"]: round(n["seconds"], 2) for n in j["nodes"] if n["state"] == "compute"}
                print(state, v.name, "approx" if approx else "exact", round(m.wall_s, 2), j["wall_seconds"], nodes, os.getloadavg()[0], flush=True)
    shutil.rmtree(tmpl.parent, True)
