"""``d3prefine refine``: refine the 3D poses of many pose files with a trained denoiser.

Each output file holds the input's arrays unchanged plus ``poses_3d_refined`` (and
``uncertainty`` with ``--samples``), and provenance metadata saying how it was made.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer

from d3prefine import __version__
from d3prefine.bones import DEFAULT_BONE_LENGTHS, BoneLengthMode, load_skeleton, rechain, skeleton_mismatch
from d3prefine.checks import screen, sequence_problems
from d3prefine.cli._common import (
    ContinueOnErrorOption,
    DeviceOption,
    InputsArgument,
    JsonOption,
    OutDirOption,
    OutputOption,
    OverwriteOption,
    ShardOption,
    ThreadsOption,
    apply_shard,
    default_threads,
    device_option,
    emit_json,
    expand_inputs,
    log,
    output_paths,
    run_attempts,
    shard_or_slurm,
    usage_error,
)
from d3prefine.config import DEFAULT_BATCH_SIZE, DEFAULT_ETA, DEFAULT_FALLBACK, DEFAULT_SMOOTH, DEFAULT_STEPS, MAX_STEPS, check_smooth
from d3prefine.errors import InputError, OutOfDistributionError
from d3prefine.io import (
    GAP_ARRAYS,
    FileSet,
    PoseSequence,
    check_output_path,
    check_output_suffix,
    fill_gaps,
    load_poses,
    pose_format,
    save_poses,
)
from d3prefine.outputfile import check_claimable, claim_output
from d3prefine.prefetch import prefetch
from d3prefine.resample import FpsPolicy, at_rate, refine_rate

if TYPE_CHECKING:  # torch is imported once there is work to do: help and usage errors start fast
    from d3prefine.refine import Refiner, RefineResult

#: Input files read ahead of the model by the background thread.
PREFETCH_FILES = 4
#: Outputs written behind the model by the writing thread with --continue-on-error (without it one
#: at a time, so that nothing is written after the first failure).
WRITE_BEHIND_FILES = 4


class _Claims:
    """The output names this run holds (:func:`~d3prefine.outputfile.claim_output`), each from
    before its input is read until its output is written; :meth:`release_all` ends the rest."""

    def __init__(self) -> None:
        self._held: dict[Path, ExitStack] = {}
        self._lock = threading.Lock()  # taken on the reading thread, released on the others

    def take(self, output: Path) -> None:
        stack = ExitStack()
        stack.enter_context(claim_output(output))
        with self._lock:
            self._held[output] = stack

    def release(self, output: Path) -> None:
        with self._lock:
            stack = self._held.pop(output, None)
        if stack is not None:
            stack.close()

    def release_all(self) -> None:
        for output in list(self._held):
            self.release(output)


@dataclass
class _Loaded:
    """An input file read and checked, ready to be refined."""

    sequences: list[PoseSequence]  # as read (NaN gaps kept, marked by 'filled')
    sources: list[PoseSequence]  # what is refined: gaps of at most --fill frames interpolated
    rates: list[float | None]  # the frame rate each sequence is refined at (None: as it is)
    filled: int  # values interpolated by --fill
    start: float  # time.perf_counter() when its reading began

    def model_inputs(self) -> list[tuple]:
        """``(poses_2d, poses_3d, image_size)`` of each sequence at the rate it is refined at."""
        return [(*at_rate(seq.poses_2d, seq.poses_3d, seq.fps, rate), seq.image_size) for seq, rate in zip(self.sources, self.rates)]


def _load_file(
    path: Path, output: Path, refiner: Refiner, *, claims: _Claims, all_inputs: FileSet, overwrite: bool, fill: int, force: bool,
    fps_policy: FpsPolicy,
) -> tuple[_Loaded, list[tuple]]:
    """Check and claim the output of ``path``, read it, fill its gaps, check its layout and sanity,
    choose the rate of each sequence; returns the file and what the model refines of it."""
    start = time.perf_counter()
    _check_output(path, output, overwrite=overwrite, inputs=all_inputs)
    claims.take(output)
    sequences = load_poses(path, allow_nan=(*GAP_ARRAYS, "gt_3d") if fill > 0 else ("gt_3d",))  # gt_3d is not used
    sources, filled = _fill(path, sequences, fill)
    for seq in sources:
        if seq.joint_layout != refiner.layout.name:
            raise InputError(
                f"{path}: sequence {seq.name!r} uses joint layout {seq.joint_layout!r}, the weights expect {refiner.layout.name!r}"
            )
        for warning in screen(sequence_problems(seq), force=force, where=str(path)):
            log(warning)
    loaded = _Loaded(sequences, sources, [refine_rate(seq.fps, refiner.fps, fps_policy, f"{path}: sequence {seq.name!r}") for seq in sequences], filled, start)
    return loaded, loaded.model_inputs()


def _load_all(paths: list[Path], load: Callable[[Path], tuple[_Loaded, list[tuple]]]) -> Iterator[tuple[tuple[Path, _Loaded | Exception], list]]:
    """``((path, loaded file), model inputs)`` per path, or ``((path, the exception that stopped it), [])``:
    the groups :meth:`~d3prefine.refine.Refiner.refine_stream` refines."""
    for path in paths:
        try:
            loaded, inputs = load(path)
        except Exception as error:  # the input's outcome: raised again when its turn comes
            yield (path, error), []
        else:
            yield (path, loaded), inputs


def _write_behind(
    stream: Iterator[tuple[tuple[Path, _Loaded | Exception], list[RefineResult]]], write: Callable[..., dict], depth: int
) -> Iterator[tuple[Path, Callable[[], dict]]]:
    """``(path, finish)`` per refined file, in order; ``finish()`` writes the file (``write(path,
    loaded, results)``) or waits for its write, and returns its summary or raises its error.

    With ``depth`` 1 each file is written in this thread when its outcome is taken. With more,
    the writes run on a thread while the model refines the next files, at most ``depth`` files
    ahead of the outcomes taken; when the consumer stops (a failure, Ctrl-C, SIGTERM) the writes
    not started are cancelled and the one under way completes (an atomic write: whole or absent).
    """
    if depth <= 1:
        for (path, item), results in stream:
            yield path, partial(write, path, item, results)
        return
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="d3prefine-write")
    try:
        pending: deque[tuple[Path, Future]] = deque()
        for (path, item), results in stream:
            pending.append((path, writer.submit(write, path, item, results)))
            while len(pending) >= depth or (pending and pending[0][1].done()):
                done, future = pending.popleft()
                yield done, future.result
        while pending:
            done, future = pending.popleft()
            yield done, future.result
    finally:
        writer.shutdown(wait=True, cancel_futures=True)


def _write_file(
    path: Path, loaded: _Loaded | Exception, results: list[RefineResult], *,
    targets: dict[Path, Path], claims: _Claims, all_inputs: FileSet, overwrite: bool, strict: bool, provenance: dict,
    skeleton: np.ndarray | None,
) -> dict:
    """Write the refined sequences of ``path`` to its output (or raise the error that stopped the
    file), their bones set to the lengths ``skeleton`` ``(J,)`` metres if given; release the
    output's claim; returns a JSON-ready summary."""
    from d3prefine.refine import at_input_rate  # torch is loaded by now

    output = targets[path]
    try:
        if isinstance(loaded, Exception):
            raise loaded
        sequences, rates = loaded.sequences, loaded.rates
        results = [at_input_rate(result, rate, seq) for seq, rate, result in zip(sequences, rates, results)]
        if skeleton is not None:  # the root trajectory is kept, every bone set to the subject's length
            results = [replace(r, poses_3d=rechain(r.poses_3d, skeleton, seq.layout).astype(np.float32)) for seq, r in zip(sequences, results)]
            for seq in sequences:
                mismatch = skeleton_mismatch(seq.poses_3d, skeleton, seq.layout)
                if mismatch is not None:
                    log(f"warning: {path}: sequence {seq.name!r}: the --skeleton's {mismatch[0]} bone is {mismatch[1]:.2f} x its median "
                        "length in poses_3d (another subject, or other units?)")
        guard = _check_guard(path, [seq.name for seq in sequences], results, strict)
        for seq, result, rate in zip(sequences, results, rates):
            seq.poses_3d_refined = result.poses_3d
            seq.uncertainty = result.uncertainty
            extra = {} if result.guard is None else {"guard": result.guard.to_dict()}
            if result.blend_weights is not None:
                extra["blend_weights"] = [round(w, 4) for w in result.blend_weights]  # one per entry of "weights"
            if result.input_weight is not None:
                extra["input_weight"] = round(result.input_weight, 4)  # --fallback: the input's share in poses_3d_refined
            if rate is not None:
                extra["resampled"] = {"from_fps": seq.fps, "to_fps": rate, "method": "cubic spline, and back"}
            seq.provenance = {**seq.provenance, "refine": {**provenance, "filled_values": loaded.filled, **extra}}
        save_poses(output, sequences, overwrite=overwrite, inputs=all_inputs)
    finally:
        claims.release(output)
    return {
        "file": path, "output": output, "sequences": len(sequences), "frames": sum(seq.num_frames for seq in sequences),
        "filled_values": loaded.filled, "seconds": round(time.perf_counter() - loaded.start, 3), "guard": guard,
    }


def _fill(path: Path, sequences: list[PoseSequence], fill: int) -> tuple[list[PoseSequence], int]:
    """What is refined (``sequences`` with NaN gaps of at most ``fill`` frames interpolated) and
    the number of values filled; each of ``sequences`` keeps its arrays and gets the ``filled`` mask."""
    if fill == 0:
        for seq in sequences:  # NaN an earlier --fill marked (without --fill, other NaN fails to load)
            if np.isnan(seq.poses_2d).any() or np.isnan(seq.poses_3d).any():
                raise InputError(f"{path}: sequence {seq.name!r}: NaN in the frames 'filled' marks; refine it with --fill N")
        return sequences, 0
    sources, count = [], 0
    for seq in sequences:
        source, n = fill_gaps(seq, fill, file=path)
        sources.append(source)
        seq.filled = source.filled
        count += n
    if count:
        log(f"{path}: interpolated {count} missing values (gaps of at most {fill} frames); the output keeps them as NaN, marked in 'filled'")
    return sources, count


def _check_output(path: Path, output: Path, *, overwrite: bool, inputs: FileSet) -> None:
    """Raise :class:`OutputError` unless the output of ``path`` can be written (suffix, existing
    file, missing folder, an input); an input of unknown suffix fails as such when it is read."""
    if pose_format(path) is not None:
        check_output_suffix(output)
        check_output_path(output, overwrite=overwrite, inputs=inputs)


def _weights_provenance(members: list[Refiner]) -> dict:
    """The weights, noise statistics and their digest of the refiner (one) or of each blended set (lists)."""
    fields = [{"weights": str(r.weights_path), "noise": str(r.noise_path), "noise_digest": r.noise_digest,
               **({"noise_mismatch_ok": {"weights_trained_with": r.noise_trained_with}} if r.noise_mismatch else {})} for r in members]
    return fields[0] if len(fields) == 1 else {key: [f[key] for f in fields] for key in ("weights", "noise", "noise_digest")}


def _uncertainty_meaning(refiner: Refiner, options: dict) -> dict:
    """What the written ``uncertainty`` is, for the provenance; a one-line note on stderr when the
    calibration was fitted with other sampling settings (its coverage is then not measured)."""
    calibration = refiner.calibration
    if calibration is None:
        return {"kind": "sample spread (uncalibrated RMS distance of the samples from their mean)"}
    fitted = {"steps": calibration.steps, "samples": calibration.samples, "eta": calibration.eta, "fallback": calibration.fallback}
    if options["flip"] or any(options[key] != value for key, value in fitted.items()):
        log(f"note: the uncertainty calibration was fitted with --steps {calibration.steps} --samples {calibration.samples} "
            f"--eta {calibration.eta:g} --{'' if calibration.fallback else 'no-'}fallback without --flip; "
            f"with other settings its {calibration.level:.0%} coverage is not measured")
    return {
        "kind": f"radius of the ball holding the true joint with probability {calibration.level:g} (conformal)",
        "scale": calibration.scale,
        "widening": calibration.widening.value,  # the rule of d3prefine.calibration.Widening
        "correction_weight": calibration.correction_weight,  # correction: scale x (spread + weight x |refined - input|)
        "calibrated_with": fitted,
    }


def _check_guard(path: Path, names: list[str], results: list[RefineResult], strict: bool) -> dict | None:
    """The file's guard summary (highest score, flagged sequences, highest input weight of the
    fallback); a one-line warning when a sequence is flagged, an :class:`OutOfDistributionError`
    instead with ``strict``."""
    scores = [result.guard for result in results]
    if not scores or scores[0] is None:
        return None
    worst = max(range(len(scores)), key=lambda k: scores[k].score)
    flagged = sum(score.flagged for score in scores)
    leaning = [result.input_weight for result in results if result.input_weight is not None]
    summary = {"max_score": round(scores[worst].score, 4), "threshold": scores[worst].threshold, "flagged_sequences": flagged,
               "max_input_weight": round(max(leaning), 4) if leaning else None}
    if flagged:
        consequence = (f"the output leans on the input (up to {max(leaning):.0%} of it, --fallback)" if leaning
                       else "refinement may make these poses worse (--no-fallback)")
        message = (
            f"{path}: inputs unlike the weights' training data (guard score {scores[worst].score:.2f} > "
            f"{scores[worst].threshold:.2f} in {flagged} of {len(scores)} sequences, worst {names[worst]!r}); {consequence}"
        )
        if strict:
            raise OutOfDistributionError(message + " (--strict: not written)")
        log(f"warning: {message}")
    return summary


#: Command lines shown at the end of ``--help``.
EXAMPLES = (
    "d3prefine refine examples/walk.npz -o /tmp/walk.refined.npz",
    "d3prefine refine 'data/*.h5' --out-dir refined/ --steps 5 --samples 8 --seed 1",
)


def command(
    inputs: InputsArgument,
    output: OutputOption = None,
    out_dir: OutDirOption = None,
    weights: Annotated[
        Optional[Path],
        typer.Option(
            "--weights",
            help="Denoiser file or folder, or a shipped set by name: 'varied', or 'blend' (the default and varied sets, blended per sequence by their guard scores: twice the work) (default: the shipped weights/).",
        ),
    ] = None,
    noise: Annotated[
        Optional[Path], typer.Option("--noise", help="Noise statistics (default: noise.safetensors next to the weights).")
    ] = None,
    noise_mismatch_ok: Annotated[
        bool,
        typer.Option(
            "--noise-mismatch-ok",
            help="Use --noise even though the weights record other noise statistics (recorded in the provenance); without it, exit code 2.",
        ),
    ] = False,
    steps: Annotated[
        int,
        typer.Option("--steps", "-k", min=1, max=MAX_STEPS, help="Reverse diffusion steps K (1 = one-shot correction; at most the weights' T).")
    ] = DEFAULT_STEPS,
    samples: Annotated[
        int, typer.Option("--samples", min=1, help="Stochastic refinements to average; >= 2 also writes 'uncertainty' (needs --steps >= 2).")
    ] = 1,
    eta: Annotated[float, typer.Option("--eta", min=0.0, max=1.0, help="Stochasticity of --samples refinements (> 0 with --samples >= 2); small values keep samples near the deterministic path (eta=1 was worse than the input on the examples).")] = DEFAULT_ETA,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the sampling noise (same samples whatever --batch-size or --device).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Windows per network call.")] = DEFAULT_BATCH_SIZE,
    smooth: Annotated[
        int, typer.Option("--smooth", min=0, help="Savitzky-Golay window (odd, frames) applied to the refined poses; 0: off.")
    ] = DEFAULT_SMOOTH,
    bone_lengths: Annotated[
        BoneLengthMode,
        typer.Option(
            "--bone-lengths",
            help="Bone lengths of the refined poses: the network's (free), each bone's median over the sequence (constant), or its median in the input poses_3d (input: the estimator's skeleton).",
        ),
    ] = DEFAULT_BONE_LENGTHS,
    skeleton: Annotated[
        Optional[Path],
        typer.Option(
            "--skeleton", dir_okay=False,
            help="The subject's bone lengths (a JSON file, README 'The subject's skeleton'): as the last step every refined bone gets its length, in the refinement's direction (after --bone-lengths, the guard and the fallback; not with --samples).",
        ),
    ] = None,
    overlap: Annotated[
        Optional[int],
        typer.Option("--overlap", min=0, help="Frames shared by consecutive windows (default: a third of the window); more averages more windows per frame at window / (window - overlap) times the work."),
    ] = None,
    flip: Annotated[
        bool,
        typer.Option("--flip", help="Also refine each window's mirror image and average (twice the work; on Human3.6M's real detections about 0.5-1 mm lower MPJPE)."),
    ] = False,
    fill: Annotated[
        int, typer.Option("--fill", min=0, help="Interpolate NaN gaps of at most this many frames (0: refuse NaN).")
    ] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Warn instead of failing when the 2D and 3D joint orders disagree or the body is not human-sized in metres.")
    ] = False,
    fps_policy: Annotated[
        FpsPolicy,
        typer.Option("--fps-policy", help="A sequence whose fps differs from the weights' training rate: resample it to that rate and back, refuse it, or ignore the difference."),
    ] = FpsPolicy.RESAMPLE,
    fallback: Annotated[
        bool,
        typer.Option("--fallback/--no-fallback", help="Lean the output on the (smoothed) input as far as the guard finds a sequence unlike the training data: the input weighs as much as the refinement at the guard's threshold and takes over above it (on Human3.6M's real detections 1.4-2.6 mm lower MPJPE; within 0.3 mm on data like the training data)."),
    ] = DEFAULT_FALLBACK,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse (exit code 3, no output) files whose inputs the guard flags as unlike the training data.")
    ] = False,
    device: DeviceOption = "auto",
    overwrite: OverwriteOption = False,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Leave out the inputs whose output exists already (a rerun of a batch job).")
    ] = False,
    continue_on_error: ContinueOnErrorOption = False,
    shard: ShardOption = None,
    threads: ThreadsOption = None,
    json_output: JsonOption = False,
) -> None:
    """Refine 3D poses: writes poses_3d_refined next to the input arrays (default: <input>.refined.<ext>).

    The windows of all inputs share the network's batches; the next files are read while the
    model works and each output is written as soon as its last window is refined. In a SLURM
    array job --shard defaults to the array task's shard.
    """
    started = time.perf_counter()
    if samples > 1 and steps < 2:
        raise typer.BadParameter("--samples >= 2 needs --steps >= 2 (a single step is deterministic)", param_hint="'--samples'")
    if samples > 1 and eta == 0.0:
        raise typer.BadParameter("--samples >= 2 needs --eta > 0 (eta 0 draws the same refinement every time)", param_hint="'--eta'")
    if skip_existing and overwrite:
        raise usage_error("give either --skip-existing or --overwrite, not both")
    if skeleton is not None and samples > 1:
        raise usage_error("--skeleton moves the refined joints after the uncertainty is calibrated: no --samples with it")
    try:
        check_smooth(smooth)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--smooth'") from None
    files = expand_inputs(inputs, exclude_tag=".refined")  # a folder refined in place: its outputs are no inputs
    targets = output_paths(files, output=output, out_dir=out_dir, tag=".refined")
    shard = shard_or_slurm(shard)
    selected = apply_shard(files, shard)
    all_inputs = FileSet(files)  # every output is checked against every input
    exists = {path: skip_existing and targets[path].exists() for path in selected}
    skipped = [path for path in selected if exists[path]]
    skipped_json = [{"file": path, "output": targets[path]} for path in skipped]
    if skipped:
        selected = [path for path in selected if not exists[path]]
        log(f"skipped {len(skipped)} input(s) whose output exists (--skip-existing); {len(selected)} to refine")
    if not selected:
        if json_output:
            emit_json({"files": [], "failed": [], "skipped": skipped_json})
        raise typer.Exit()
    if not continue_on_error:  # every output is checked before any work: the first problem stops the run
        for path in selected:
            _check_output(path, targets[path], overwrite=overwrite, inputs=all_inputs)
            check_claimable(targets[path])  # folder writable, no other process writing it
    torch_device = device_option(device)
    import torch

    from d3prefine.blend import BlendedRefiner, load_refiner

    threads = threads or default_threads(shard)
    if threads is not None:
        torch.set_num_threads(threads)
    refiner = load_refiner(weights, noise, device=torch_device, noise_mismatch_ok=noise_mismatch_ok)
    members = refiner.refiners if isinstance(refiner, BlendedRefiner) else [refiner]
    if len(members) > 1 and samples > 1:
        raise usage_error("--weights blend refines deterministically: no --samples")
    for member in members:
        if member.noise_mismatch:
            log(f"warning: {member.noise_path} is not the noise statistics {member.weights_path} was trained with (--noise-mismatch-ok)")
        if strict and member.guard is None:
            raise usage_error(f"--strict: the weights {member.weights_path} hold no guard reference (weights written by 'd3prefine train' hold one unless --no-guard; see 'python -m benchmarks.guard')")
        if steps > member.schedule.num_train_timesteps:
            raise typer.BadParameter(f"{steps} exceeds the {member.schedule.num_train_timesteps} steps the weights were trained with", param_hint="'--steps'")
    try:
        overlap = refiner.resolve_overlap(overlap)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--overlap'") from None
    lengths = None if skeleton is None else load_skeleton(skeleton, refiner.layout)
    options = {"steps": steps, "samples": samples, "eta": eta, "seed": seed, "batch_size": batch_size, "smooth": smooth, "bone_lengths": bone_lengths.value,
               "overlap": overlap, "flip": flip, "fallback": fallback}
    provenance = {
        "tool": f"d3prefine {__version__}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_weights_provenance(members),
        **({"blend": {"rule": "weights 2^(-sharpness x (guard score - threshold)), normalized", "sharpness": refiner.sharpness}} if len(members) > 1 else {}),
        "device": torch_device,
        **options,
        **({} if lengths is None else {"skeleton": {"file": str(skeleton), "bone_lengths_m": {
            refiner.layout.joint_names[c]: round(float(lengths[c]), 6) for _, c in refiner.layout.bones}}}),
    }
    if samples > 1:
        provenance["uncertainty"] = _uncertainty_meaning(refiner, options)
    claims = _Claims()
    load = partial(_load_file, refiner=refiner, claims=claims, all_inputs=all_inputs, overwrite=overwrite, fill=fill, force=force,
                   fps_policy=fps_policy)
    loaded = prefetch(_load_all(selected, lambda path: load(path, targets[path])), PREFETCH_FILES)
    stream = refiner.refine_stream(loaded, **options)
    write = partial(_write_file, targets=targets, claims=claims, all_inputs=all_inputs, overwrite=overwrite, strict=strict,
                    provenance=provenance, skeleton=lengths)
    attempts = _write_behind(stream, write, WRITE_BEHIND_FILES if continue_on_error else 1)
    try:
        with closing(loaded), closing(stream), closing(attempts):  # a stop after a failure ends the threads
            batch = run_attempts(selected, attempts, continue_on_error=continue_on_error, description="refining")
    finally:
        claims.release_all()  # files read but never written (a stop, an interruption)
    results = batch.values
    frames, seconds = sum(r["frames"] for r in results), time.perf_counter() - started
    if json_output:
        emit_json({
            "files": results,
            "failed": [{"file": o.path, "error": o.error} for o in batch.failures],
            "skipped": skipped_json,
        })
    if results:
        where = f"{torch.get_num_threads()} CPU threads" if torch_device == "cpu" else torch_device
        log(f"refined {len(results)} file(s), {frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.0f} frames/s, {where})")
    raise typer.Exit(batch.exit_code)
