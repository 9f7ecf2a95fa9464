#!/usr/bin/env python3
"""Submits TrainingJobs drawn from a Microsoft ITP GPU job trace, in scaled time.

    hack/demo/submit_trace.py TRACE.csv --jobs 60 --speedup 120 --namespace default

The ITP trace (job_id, submission_time, duration, num_gpu; seconds) is real: first-party
deep-learning training jobs of Microsoft's ITP clusters (MIT licence, ElasticFlow,
ASPLOS '23). Each job becomes a TrainingJob: GPUs map to replicas × gpusPerReplica (8 GPUs
per node), submission times and durations are divided by --speedup, and the KWOK pod
annotation `verdant.dev/kwok-succeed-after` makes the pods finish after the scaled
duration. Policies are drawn with a fixed seed: 40 % Immediate, 40 % GreenPreferred with
a deadline slack, 20 % GreenOnly interruptible with power capping.
"""
import argparse
import csv
import json
import math
import random
import subprocess
import sys
import time


def shape(num_gpu):
    if num_gpu <= 8:
        return 1, max(1, num_gpu)
    return math.ceil(num_gpu / 8), 8


def go_duration(seconds):
    seconds = max(1, int(round(seconds)))
    return f"{seconds}s"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace")
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--speedup", type=float, default=120.0)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--max-gpus", type=int, default=32, help="skip jobs larger than this")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with open(args.trace, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("job_id")]
    jobs = []
    for job_id, submitted, duration, num_gpu in (r[:4] for r in rows):
        try:
            submitted, duration, num_gpu = float(submitted), float(duration), int(num_gpu)
        except ValueError:
            continue
        if 0 < num_gpu <= args.max_gpus and duration > 0:
            jobs.append((submitted, duration, num_gpu, job_id))
        if len(jobs) >= args.jobs:
            break
    if not jobs:
        sys.exit(f"no usable jobs in {args.trace}")
    t0 = jobs[0][0]
    start = time.time()
    for i, (submitted, duration, num_gpu, job_id) in enumerate(jobs):
        wait = (submitted - t0) / args.speedup - (time.time() - start)
        if wait > 0:
            time.sleep(min(wait, 60))
        replicas, gpus = shape(num_gpu)
        run_s = max(20.0, duration / args.speedup)
        roll = rng.random()
        if roll < 0.4:
            energy = {"policy": "Immediate", "estimatedDuration": go_duration(run_s)}
        elif roll < 0.8:
            slack = rng.choice([1.0, 2.0, 4.0])
            energy = {"policy": "GreenPreferred", "estimatedDuration": go_duration(run_s),
                      "maxDelay": go_duration(run_s * slack), "minRenewableFraction": 0.8}
        else:
            energy = {"policy": "GreenOnly", "interruptible": True, "estimatedDuration": go_duration(run_s),
                      "powerCapping": {"enabled": True, "minPercent": 60}}
        name = f"itp-{i:03d}-{job_id[:8]}"
        manifest = {
            "apiVersion": "verdant.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": args.namespace,
                         "labels": {"verdant.dev/source": "itp-trace"}},
            "spec": {
                "replicas": replicas, "gpusPerReplica": gpus, "energy": energy,
                "runPolicy": {"ttlSecondsAfterFinished": 600},
                "template": {
                    "metadata": {"annotations": {"verdant.dev/kwok-succeed-after": go_duration(run_s)}},
                    "spec": {"containers": [{"name": "trainer", "image": "pytorch/pytorch",
                                             "command": ["torchrun", "train.py"]}]},
                },
            },
        }
        result = subprocess.run([args.kubectl, "apply", "-f", "-"], input=json.dumps(manifest),
                                text=True, capture_output=True)
        status = "ok" if result.returncode == 0 else f"FAILED: {result.stderr.strip()}"
        print(f"[{i + 1}/{len(jobs)}] {name}: {replicas}×{gpus} GPUs, {energy['policy']}, "
              f"runs {run_s:.0f}s: {status}", flush=True)


if __name__ == "__main__":
    main()
