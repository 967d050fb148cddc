"""What more reverse steps can do: the denoiser on true forward states versus DDIM states.

On fixed validation windows (root-relative, metres in, millimetres out):

* ``K=1``: the clean-pose estimate ``x0_hat`` from the estimator output ``y`` at step T;
* for each intermediate step t, two states with the same nominal step:
  - the **true forward state** ``x + (t/T)(y - x)``: ground truth plus the scaled real error,
    what ``--intermediate-states forward`` training shows the network at step t;
  - the **DDIM state** ``x0_hat_T + (t/T) e_hat_T``: what a deterministic reverse step from T
    actually hands the network at step t (``d3prefine.schedule.ErrorSchedule.step``), and what
    ``--intermediate-states sampler`` training shows it;
  and for each the error of the state itself and of the network's ``x0_hat`` from it (from the
  DDIM state at t that is the K = 2 result with its middle step at t).

For a model trained on forward states, a network that improves a lot from true forward states
but not from DDIM states fails at later steps because the DDIM state is unlike anything seen in
training: its error is the part of the real error the first step could not predict plus a
rescaled copy of the prediction, not a scaled real error.

    python -m benchmarks.reverse_steps --val data/val_temporal.h5 --val data/val_frame.h5 \\
        --out benchmarks/results/reverse_steps
    python -m benchmarks.reverse_steps --val data/val_temporal.h5 --val data/val_frame.h5 \\
        --weights runs/variants/forward.safetensors --noise weights/noise.safetensors \\
        --out benchmarks/results/reverse_steps_forward
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

from benchmarks.report import count, markdown_table, report_head, run_probe
from d3prefine.io import load_poses
from d3prefine.metrics import mpjpe
from d3prefine.refine import Refiner
from d3prefine.runtime import log
from d3prefine.train import WindowSampler

STEPS = (75, 50, 25)  # intermediate steps t (of T = 100) probed


def _mpjpe_mm(pose: torch.Tensor, gt: torch.Tensor) -> float:
    return 1000.0 * float(mpjpe(pose, gt, root=None))  # metres -> millimetres


@torch.inference_mode()
def probe(refiner: Refiner, path: Path, windows: int, seed: int) -> dict:
    """Errors (mm) of states and of the network's clean-pose estimates on ``windows`` windows of ``path``."""
    sampler = WindowSampler(load_poses(path), refiner.window, refiner.layout.root)
    p, y, x = sampler.batch(sampler.fixed(windows, seed), refiner.device)
    T = refiner.schedule.num_train_timesteps
    mean = refiner.noise.mean(p, y)
    estimate = partial(refiner.error_model.predict, p=p, mean=mean)
    first = estimate(y, t=T)
    x0_T, e_T = first.clean, first.error
    rows = []
    for t in STEPS:
        true_state, ddim_state = x + (t / T) * (y - x), x0_T + (t / T) * e_T
        rows.append({
            "t": t,
            "true_state_mpjpe": _mpjpe_mm(true_state, x), "true_x0_mpjpe": _mpjpe_mm(estimate(true_state, t=t).clean, x),
            "ddim_state_mpjpe": _mpjpe_mm(ddim_state, x), "ddim_x0_mpjpe": _mpjpe_mm(estimate(ddim_state, t=t).clean, x),
        })
    return {"val_file": path, "windows": len(y), "input_mpjpe": _mpjpe_mm(y, x), "k1_mpjpe": _mpjpe_mm(x0_T, x), "steps": rows}


def markdown(document: dict) -> str:
    lines = [*report_head("Reverse steps: true forward states versus DDIM states", document["run"]),
             "MPJPE (mm, root-relative) on fixed validation windows. A *state* is what the network gets at step t; "
             "*x0_hat* is its clean-pose estimate from that state (from the DDIM state at t: the K=2 result with its middle step at t). "
             "The true forward state is what `--intermediate-states forward` training shows; the DDIM state is what inference "
             "hands over after the first step and what `--intermediate-states sampler` training shows.", ""]
    for section in document["files"]:
        lines += [f"## {section['val_file']}", "",
                  f"{section['windows']} windows: estimator input {section['input_mpjpe']:.2f} mm, K=1 {section['k1_mpjpe']:.2f} mm.", "",
                  markdown_table(["t", "true forward state", "x0_hat from it", "DDIM state", "x0_hat from it"],
                                 [[str(r["t"]), *(f"{r[k]:.2f}" for k in ("true_state_mpjpe", "true_x0_mpjpe", "ddim_state_mpjpe", "ddim_x0_mpjpe"))]
                                  for r in section["steps"]]), ""]
    return "\n".join(lines)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val", type=Path, action="append", required=True, help="validation pose file with gt_3d (repeatable)")
    parser.add_argument("--windows", type=count, default=1024, help="fixed validation windows per file")


def _measure(refiner: Refiner, args: argparse.Namespace) -> dict:
    files = []
    for path in args.val:
        files.append(probe(refiner, path, args.windows, args.seed))
        log(f"{path}: K=1 {files[-1]['k1_mpjpe']:.2f} mm; " + ", ".join(
            f"t={r['t']}: x0_hat {r['true_x0_mpjpe']:.2f} (true state) vs {r['ddim_x0_mpjpe']:.2f} (DDIM state)" for r in files[-1]["steps"]))
    return {"settings": {"windows": args.windows, "seed": args.seed, "steps": list(STEPS)}, "files": files}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_probe("benchmarks.reverse_steps", __doc__, argv, _add_arguments, _measure, markdown)


if __name__ == "__main__":
    sys.exit(main())
