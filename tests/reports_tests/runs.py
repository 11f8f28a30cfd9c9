"""Runs as bench.tracking.load_runs returns them, written by hand: frames and tables without MLflow."""

from __future__ import annotations

import itertools

_ids = itertools.count()


def run(policy="always", up="fp32", down="fp32", *, seed=0, acc=0.9, comm=100.0, total=None, flops=1e9,
        study="vgg11-c2-clients1", status="FINISHED", args=None, model="vgg11", clients=1, modes=(0, 0, 0),
        role="trial") -> dict:
    params = {"model": model, "width": "1.0", "cut": "2", "dataset": "cifar10", "clients": str(clients),
              "epochs": str(len(modes)), "train_subset": "None", "seed": str(seed), "policy": policy,
              "quant_up": up, "quant_down": down}
    params |= {f"policy.{k}": str(v) for k, v in (args or {}).items()}
    metrics = {"final/test_acc": acc, "final/comm_bytes": comm, "final/total_bytes": total or comm * 1.01,
               "final/client_flops": flops, "final/full_epochs": float(modes.count(0)),
               "final/forward_epochs": float(modes.count(1)), "final/cached_epochs": float(modes.count(2))}
    tags = {"splitbench.role": role, "study": study, "sweep": "s", "trial": str(next(_ids)), "git_commit": "abc123",
            "versions": "splitbench 0.1.0", "device": "cpu", "seed": str(seed), "data_source": "/data/cifar"}
    history = {"mode": [(e, float(m)) for e, m in enumerate(modes)],
               "test/acc": [(e, acc * (e + 1) / len(modes)) for e in range(len(modes))]}
    return {"run_id": f"r{next(_ids)}", "name": f"{policy}-{up}-{down}-s{seed}", "status": status, "tags": tags,
            "params": params, "metrics": metrics if status == "FINISHED" else {},
            "history": history if status == "FINISHED" else {}}
