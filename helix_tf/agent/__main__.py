"""``python -m helix_tf.agent CONFIG ...``: the agent process (``helix-tf agent start`` runs it)."""

from __future__ import annotations

import argparse
import logging
import sys

from helix_tf.agent._daemon import AgentOptions, serve
from helix_tf.api import parse_budget


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helix_tf.agent")
    parser.add_argument("config")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--store", default=None)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--resume-after", type=float, default=3.0)
    parser.add_argument("--no-preload", action="store_true")
    parser.add_argument("--budget", default=None)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--verify-share", type=float, default=0.25)
    parser.add_argument("--verify-min-gain", type=float, default=0.1)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("absl", "tensorflow", "apache_beam", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    serve(
        AgentOptions(
            config=args.config,
            data_dir=args.data_dir,
            store=args.store,
            cores=args.cores,
            seed=args.seed,
            max_trials=args.trials,
            resume_after=args.resume_after,
            preload=not args.no_preload,
            budget=parse_budget(args.budget),
            share=args.share,
            batch=args.batch,
            verify_share=args.verify_share,
            verify_min_gain=args.verify_min_gain,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
