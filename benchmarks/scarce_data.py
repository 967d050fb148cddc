"""Diffusion versus plain regression when training pairs are scarce.

The accuracy benchmark trains every model on all 7,675 training sequences per estimator, and a
run of 4,000 steps sees a quarter of their windows: there the model is short of optimizer steps,
and the same network trained as a one-shot regressor, which spends every window on the step
every refinement starts from, beats the diffusion model. A user who fits d3prefine to another
estimator may instead have only a few sequences of its outputs paired with ground truth, so
that a run passes over the same windows many times. This probe measures that regime.

It draws a seeded subsample of ``--sequences N`` training sequences from each ``--train``
file, fits the noise statistics on those pairs alone (per joint, as ``fit-noise``), and trains
the default network three times (:data:`MODELS`) with the same ``--steps`` and seed: as a plain
regressor (``objective=regression``), as the diffusion model (the ``train`` defaults), and as
the diffusion model whose forward process corrupts half of the windows with errors *sampled*
from the fitted conditional Gaussian (``forward_errors=mixed``): fresh errors at every draw, an
augmentation a regressor on the same few pairs does not get. Each model refines a seeded
subsample of ``--val-sequences`` sequences of every ``--val`` file through the product's
pipeline as ``refine`` does (``Refiner.refine_sequences``: each model at the frame rate it
trained on, which ``train`` stores, the init weights at theirs, and back; default smoothing;
:data:`SCORED` gives K), scored
root-relative in mm, pooled frame-weighted; the training runs' own validation MPJPE on up to
1,024 fixed windows (K = 1, network output) every ``--eval-every`` steps is the learning curve.
A ``--sequences`` at least the files' size trains on all of them: the same comparison with
plentiful pairs at the same number of steps. ``--models`` trains only some of them.

With ``--init WEIGHTS`` (e.g. ``weights/``) three rows more: those weights as they are, the
diffusion model fine-tuned from them (``train --init``) on the same pairs with the same steps and
settings, pulled toward them by ``--init-anchor`` (``train --anchor``; default that of ``train
--init``, by the number of sequences each run trains on), using the weights' own noise statistics (so that step 0 is exactly those weights), and
the same fine-tuning as a user would run it (:data:`SELECTED`): every ``--select-every``-th pair
held out, trained on the others and written with ``--keep best``, the weights of its best
validation on the held-out pairs, step 0 (the weights as they are) included, with the refine
guard ``train`` stores (:func:`d3prefine.guard_fit.fit_guard` on up to 300 of each); when the init
weights hold a guard, also those weights refined without their fallback. The question a user
with a few pairs of their own estimator asks: fine-tune, train from scratch, or use the shipped
model as it is? Every other model writes its last weights (``--keep last``): its validation
windows are cut from the sequences it is scored on.

``--disjoint-by KEY`` (e.g. ``source_file``, the motion capture take a Bandai sequence was cut
from) draws the training pairs only among sequences that share no provenance ``KEY`` with a
scored one, and holds out whole groups of that key for the selection: so ``--train`` may be the
``--val`` file itself, the case of a user whose few pairs come from their own recordings, while
no motion is both trained on and scored. Weights fine-tuned from a set trained on the Bandai
TRAIN split have seen every TRAIN motion already, with other estimators' errors; 20 TRAIN pairs
are no new motions for them, and held-out TRAIN pairs no fair selection.

Budgets run side by side, one process each:

    python -m benchmarks.scarce_data --train data/train_temporal.h5 --train data/train_frame.h5 \\
        --val data/val_temporal.h5 --val data/val_frame.h5 --sequences 20 --threads 1 \\
        --out benchmarks/results/scarce_data_20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.accuracy import estimator_label, load_scored, pooled_report
from benchmarks.report import fmt, markdown_table, report_head, run_and_write, run_info
from d3prefine.config import KeptWeights, fine_tune_anchor
from d3prefine.errors import InputError
from d3prefine.guard_fit import fit_guard, guard_sequences
from d3prefine.io import PoseSequence
from d3prefine.metrics import METRICS, MetricReport
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple
from d3prefine.refine import Refiner
from d3prefine.runtime import log
from d3prefine.train import ForwardErrors, Objective, TrainConfig, Trainer, WindowSampler

REPORTED = ("mpjpe", "p_mpjpe", "accel_error")  # of d3prefine.metrics.METRICS
# The models trained at every budget: name -> the TrainConfig fields that differ from the train defaults.
MODELS = {
    "regression": {"objective": Objective.REGRESSION},
    "diffusion": {},
    "diffusion, mixed errors": {"forward_errors": ForwardErrors.MIXED},
}
# How each model refines: (model, K reverse steps).
SCORED = (("regression", 1), ("diffusion", 1), ("diffusion", 2), ("diffusion, mixed errors", 1))
SHIPPED, TUNED = "init weights as they are", "diffusion fine-tuned from the init weights"  # the --init rows
# The init weights without their fallback (only when they hold a guard reference): the fine-tuned
# rows' fallback is another guard's (TUNED holds none, SELECTED the one train fits on its pairs),
# and this row tells the init's fallback apart from the fine-tuning's gain.
UNGUARDED = "init weights as they are, no fallback"
SELECTED = "diffusion fine-tuned, best on held-out pairs"  # the third --init row (train --keep best)


def fit_noise(sequences: list[PoseSequence]) -> NoiseModel:
    """Per-joint conditional Gaussian of the errors of ``sequences`` (as ``d3prefine fit-noise``)."""
    layout = sequences[0].layout
    triples = (error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, layout.root) for s in sequences)
    return NoiseModel.fit(triples, layout=layout.name, info={"sequences": len(sequences)})


def train(
    name: str, noise: NoiseModel, data: WindowSampler, val: WindowSampler, args: argparse.Namespace, init: PoseDenoiser | None = None,
    lr: float | None = None, keep: KeptWeights = KeptWeights.LAST, anchor: float = 0.0,
) -> tuple[PoseDenoiser, list[dict]]:
    """The default network (or ``init``'s, starting from its weights and pulled back toward them
    by ``anchor``, :attr:`TrainConfig.anchor`) trained as ``MODELS[name]`` on ``data`` (peak
    learning rate ``lr``, default the train default); the EMA weights it keeps (``keep``, validated
    on ``val``) and its validation history."""
    config = init.config if init is not None else DenoiserConfig(num_joints=noise.num_joints, layout=noise.layout)
    train_config = TrainConfig(steps=args.steps, eval_every=args.eval_every, seed=args.seed, keep=keep, **MODELS[name],
                               anchor=anchor, **({} if lr is None else {"lr": lr}))
    trainer = Trainer(config, train_config, noise, data, val, torch.device("cpu"), init=None if init is None else init.state_dict())
    with tempfile.TemporaryDirectory() as folder:  # fit() writes the weights; the probe keeps them in memory
        history = trainer.fit(Path(folder) / "denoiser.safetensors")
    log(f"  {name}: " + ", ".join(f"step {r['step']} {r['val_mpjpe']:.2f}" for r in history) + f" mm (val windows, K=1); kept step {trainer.kept_step}")
    return trainer.kept_model(), history


def _group(seq: PoseSequence, key: str) -> str:
    """The provenance value ``key`` of ``seq`` as text; :class:`InputError` without it."""
    if key not in seq.provenance:
        raise InputError(f"--disjoint-by {key}: sequence {seq.name!r} has no provenance key {key!r}")
    return json.dumps(seq.provenance[key], sort_keys=True)


def disjoint(scored: list[PoseSequence], key: str | None) -> Callable[[PoseSequence], bool] | None:
    """With a provenance ``key`` (e.g. ``source_file``, the motion a sequence was cut from), the
    test that keeps a training sequence only if no ``scored`` sequence shares its value."""
    if key is None:
        return None
    used = {_group(seq, key) for seq in scored}
    return lambda seq: _group(seq, key) not in used


def held_out_split(sequences: list[PoseSequence], every: int, key: str | None) -> tuple[list[PoseSequence], list[PoseSequence]]:
    """``(kept, held_out)``: every ``every``-th group of ``sequences`` held out, a group being one
    sequence or, with a provenance ``key``, all sequences that share its value (so that no motion
    is on both sides)."""
    labels = [str(k) if key is None else _group(seq, key) for k, seq in enumerate(sequences)]
    order = {label: n for n, label in enumerate(dict.fromkeys(labels))}
    out = [order[label] % every == every - 1 for label in labels]
    return [s for s, o in zip(sequences, out) if not o], [s for s, o in zip(sequences, out) if o]


def _anchor(args: argparse.Namespace, sequences: list[PoseSequence]) -> float:
    """The fine-tuning's anchor: ``--init-anchor`` or, without it, ``train --init``'s for ``sequences``."""
    return fine_tune_anchor(len(sequences)) if args.init_anchor is None else args.init_anchor


def _summary(report: MetricReport) -> dict[str, float]:
    return {m: report.summary[m] for m in REPORTED}


def measure(args: argparse.Namespace) -> dict:
    """The :data:`MODELS` trained on ``--sequences`` sequences of every ``--train`` file, scored on ``--val``."""
    val = []
    for path in args.val:
        scored = load_scored(path, args.val_sequences, args.seed)
        val.append((estimator_label(scored, path), path, scored))
    val_sequences = [seq for _, _, scored in val for seq in scored]
    root = val_sequences[0].layout.root
    val_windows = WindowSampler(val_sequences, DenoiserConfig.window, root)
    sequences = [seq for path in args.train for seq in load_scored(path, args.sequences, args.seed, keep=disjoint(val_sequences, args.disjoint_by))]
    noise = fit_noise(sequences)
    data = WindowSampler(sequences, DenoiserConfig.window, root)
    frames = sum(seq.num_frames for seq in sequences)
    log(f"{args.sequences} sequences per training file: {len(sequences)} sequences, {frames} frames, {len(data.starts)} windows")
    refiners, curves = {}, {}
    for name in args.models:
        model, curves[name] = train(name, noise, data, val_windows, args)
        refiners[name] = Refiner(model, noise, "cpu", fps=data.fps)  # as train stores it
    scored_rows = [(name, steps, {}) for name, steps in SCORED if name in refiners]
    if args.init is not None:
        shipped = Refiner.from_pretrained(args.init, device="cpu")
        windows = (WindowSampler(sequences, shipped.window, root), WindowSampler(val_sequences, shipped.window, root))
        tuning = {"init": shipped.model, "lr": args.init_lr}
        anchors = {TUNED: _anchor(args, sequences)}
        model, curves[TUNED] = train("diffusion", shipped.noise, *windows, args, **tuning, anchor=anchors[TUNED])
        refiners[SHIPPED] = refiners[UNGUARDED] = shipped
        refiners[TUNED] = Refiner(model, shipped.noise, "cpu", fps=data.fps)
        kept, held_out = held_out_split(sequences, args.select_every, args.disjoint_by)
        if not held_out or not kept:
            raise InputError(f"--select-every {args.select_every}: {len(sequences)} training sequences leave none "
                             + ("held out" if not held_out else "to train on"))
        log(f"{SELECTED}: {len(kept)} training sequences, {len(held_out)} held out")
        split = (WindowSampler(kept, shipped.window, root), WindowSampler(held_out, shipped.window, root))
        anchors[SELECTED] = _anchor(args, kept)
        model, curves[SELECTED] = train("diffusion", shipped.noise, *split, args, **tuning, anchor=anchors[SELECTED], keep=KeptWeights.BEST)
        refiners[SELECTED] = Refiner(model, shipped.noise, "cpu", fps=split[0].fps)
        fit_guard(refiners[SELECTED], *guard_sequences(kept, held_out, args.seed), init=shipped.guard)  # as train stores it
        scored_rows += [(SHIPPED, 1, {}), *([(UNGUARDED, 1, {"fallback": False})] if shipped.guard is not None else []),
                        (TUNED, 1, {}), (SELECTED, 1, {})]
    files = []
    for label, path, scored in val:
        rows = [{"method": "base estimator", "metrics": _summary(pooled_report([s.poses_3d for s in scored], scored))}]
        for name, steps, options in scored_rows:
            refined = refiners[name].refine_sequences(scored, steps=steps, **options)  # as refine does: at the weights' rate and back
            rows.append({"method": f"{name} K={steps}", "model": name, "steps": steps,
                         "metrics": _summary(pooled_report([r.poses_3d for r in refined], scored))})
        log(f"  {label}: " + ", ".join(f"{r['method']} {r['metrics']['mpjpe']:.2f}" for r in rows) + " mm MPJPE")
        files.append({"estimator": label, "val_file": path, "sequences": len(scored), "frames": sum(s.num_frames for s in scored), "rows": rows})
    return {"train_sequences": len(sequences), "train_frames": frames, **({"anchors": anchors} if args.init is not None else {}), "train_windows": len(data.starts),
            "windows_drawn": args.steps * TrainConfig.batch_size, "val_windows": min(TrainConfig.val_windows, len(val_windows.starts)),
            "curves": curves, "files": files}


def markdown(document: dict) -> str:
    settings = document["settings"]
    lines = [*report_head("Diffusion versus plain regression with scarce training pairs", document["run"]),
             f"A seeded subsample of up to {settings['sequences']:,} training sequences per `--train` file (all of a smaller file; "
             f"in all {document['train_sequences']:,} sequences, {document['train_frames']:,} frames, {document['train_windows']:,} windows), "
             f"noise statistics fitted on them alone, and the default network trained {settings['steps']:,} steps of "
             f"{TrainConfig.batch_size} windows ({document['windows_drawn'] / document['train_windows']:.2f} draws per training window; "
             "same seed) as a plain regressor, as the diffusion model (the `train` defaults) and as the diffusion model with half of "
             "its forward errors sampled from the fitted Gaussian (`--forward-errors mixed`). "
             f"Scored on {settings['val_sequences']} validation sequences per file as `refine` refines them (each model at the frame rate it trained on and back; default smoothing): "
             "MPJPE and P-MPJPE in mm, acceleration error in mm/frame², in parentheses the difference to the regressor "
             "(to the base estimator when the regressor was not trained; negative: better)." + _disjoint_note(settings) + _init_note(document), ""]
    for f in document["files"]:
        reference = next((r["metrics"] for r in f["rows"] if r["method"] == "regression K=1"), f["rows"][0]["metrics"])
        table = [[r["method"], *(f"{fmt(r['metrics'][m], 2)} ({fmt(r['metrics'][m] - reference[m], 2, signed=True)})" for m in REPORTED)]
                 for r in f["rows"]]
        lines += [f"## {f['estimator']}", "", f"{f['sequences']} sequences, {f['frames']:,} frames of `{f['val_file']}`.", "",
                  markdown_table(["method", *(METRICS[m].title for m in REPORTED)], table), ""]
    steps = sorted({r["step"] for history in document["curves"].values() for r in history})
    curves = [[f"{name} (on its held-out pairs)" if name == SELECTED else name,
               *(fmt(next((r["val_mpjpe"] for r in history if r["step"] == s), None), 2) for s in steps)]
              for name, history in document["curves"].items()]
    lines += ["## Learning curves", "",
              f"Validation MPJPE (mm) on the training runs' up to {document['val_windows']:,} fixed validation windows (K = 1, no smoothing); "
              "fine-tuning runs are validated at step 0 too.", "",
              markdown_table(["model", *(f"step {s}" for s in steps)], curves), ""]
    return "\n".join(lines)


def _disjoint_note(settings: dict) -> str:
    key = settings.get("disjoint_by")
    return "" if key is None else f" Training sequences are drawn only among those that share no provenance `{key}` with a scored sequence."


def _init_note(document: dict) -> str:
    settings = document["settings"]
    if settings.get("init") is None:
        return ""
    lr = "" if settings.get("init_lr") is None else f" (but a peak learning rate of {settings['init_lr']:g})"
    anchors = document["anchors"]
    pulled = ", ".join(f"`train --anchor {anchors[name]:g}` for '{name}'" for name in (TUNED, SELECTED) if anchors[name])
    pulled = f", pulled toward it ({pulled})" if pulled else ""
    return (f" Also `{settings['init']}` as it is ('{SHIPPED}') and the diffusion model fine-tuned from it with the same steps, "
            f"settings{lr} and pairs{pulled}, using its own noise statistics ('{TUNED}', its last weights), and as a user would: every "
            f"{settings['select_every']}th pair held out and the weights of the best validation on them kept, step 0 included "
            f"(`train --keep best`; '{SELECTED}', with the refine guard train stores: its reference on the pairs trained on, pooled "
            f"with the init weights' guard, its threshold on the held-out ones). '{TUNED}' holds no guard and refines without the fallback, and so does "
            f"'{UNGUARDED}' (init weights that hold a guard).")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scarce_data", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--train", type=Path, action="append", required=True, help="training pose file with gt_3d (repeatable)")
    parser.add_argument("--val", type=Path, action="append", required=True, help="validation pose file with gt_3d (repeatable)")
    parser.add_argument("--sequences", type=int, required=True, help="seeded subsample of training sequences per --train file")
    parser.add_argument("--val-sequences", type=int, default=300, help="seeded subsample of sequences per --val file")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps of every model")
    parser.add_argument("--eval-every", type=int, default=250, help="steps between the training runs' validations")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsamples and of training")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="the models trained from scratch")
    parser.add_argument("--init", type=Path, default=None, help="weights (file or folder) to score as they are and to fine-tune")
    parser.add_argument("--init-lr", type=float, default=None, help="peak learning rate of the fine-tuning (default: the train default)")
    parser.add_argument("--init-anchor", type=float, default=None,
                        help="the fine-tuning's pull toward the init weights (train --anchor; default train's for the sequences each run trains on, 0: off)")
    parser.add_argument("--select-every", type=int, default=5, help=f"'{SELECTED}': every N-th training pair held out to choose the weights")
    parser.add_argument("--disjoint-by", default=None, metavar="KEY",
                        help="draw training sequences only among those whose provenance KEY (e.g. source_file) no scored sequence shares")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if min(args.sequences, args.val_sequences, args.steps, args.eval_every) < 1 or args.select_every < 2 or (args.init_anchor or 0) < 0:
        parser.error("--sequences, --val-sequences, --steps and --eval-every must be >= 1, --select-every >= 2, --init-anchor >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    def build() -> tuple[dict, str]:
        provenance = run_info("benchmarks.scarce_data", argv, ["cpu"])
        settings = {"sequences": args.sequences, "steps": args.steps, "eval_every": args.eval_every, "seed": args.seed,
                    "val_sequences": args.val_sequences, "threads": args.threads, "models": {m: MODELS[m] for m in args.models}, "scored": SCORED,
                    "init": None if args.init is None else str(args.init), "init_lr": args.init_lr, "init_anchor": args.init_anchor,
                    "select_every": args.select_every, "disjoint_by": args.disjoint_by}
        document = {"benchmark": "scarce_data", "run": provenance, "settings": settings, **measure(args)}
        return document, markdown(document)

    return run_and_write(args.out, build)


if __name__ == "__main__":
    sys.exit(main())
