#!/usr/bin/env bash
# Every command behind the committed results, in the order they were run (2-core CPU machine,
# one torch thread per process, two processes at a time). Each step resumes where it stopped:
# studies from their SQLite storage, runs from their checkpoints. DATA is the shared data folder.
set -euo pipefail
DATA=${DATA:-../shared/data}
T1="--num_threads 1 --progress false"

# -- baselines for scale -------------------------------------------------------------------------
for d in tiktok baby ml100k; do siger results mostpop --dataset $d --data-dir $DATA; done

# -- issue 21: studies (chosen on valid; test recorded, never used) ---------------------------------
# SIGER on TikTok: 60 trials, two workers (the command run twice); trials 0-24 under the median
# pruner, the rest under the percentile pruner (bottom 25 %), both with a 20-epoch warm-up.
siger tune --model SIGER --dataset tiktok --trials 60 --out results/studies/siger_tiktok --enqueue-defaults \
    --enqueue results/studies/siger_tiktok/enqueue.yaml --epochs 200 --pruner percentile $T1
# MGCN on TikTok: same budget, its own keys of the space
siger tune --model MGCN --dataset tiktok --trials 60 --out results/studies/mgcn_tiktok --enqueue-defaults \
    --epochs 200 --pruner percentile $T1
