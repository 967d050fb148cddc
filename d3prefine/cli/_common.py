"""Batch machinery shared by every ``d3prefine`` command.

A command that processes files follows the same steps::

    inputs = expand_inputs(paths)                                   # files, folders, globs
    outputs = output_paths(inputs, output=output, out_dir=out_dir, tag=".refined")  # if it writes
    batch = run_batch(apply_shard(inputs, shard), process_one, continue_on_error=continue_on_error)
    raise typer.Exit(batch.exit_code)

Conventions:

* stdout carries the results only: JSON with ``--json``, otherwise human-readable tables.
  Logs, progress, errors and the batch summary go to stderr (:data:`err_console`).
* Exit codes (:class:`~d3prefine.errors.ExitCode`): 0 all inputs succeeded, 1 at least one
  input failed, 2 usage error (bad option, nothing to do).
* A :class:`~d3prefine.errors.D3PrefineError` is shown as one red line ``error: <message>``.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from d3prefine.describe import WEIGHTS_SUFFIX
from d3prefine.errors import D3PrefineError, ExitCode, OutOfDistributionError, OutputError, UsageError
from d3prefine.io import SUFFIXES
from d3prefine.runtime import Device, err_console, jsonable, log, parse_device, report_error, resolve_device

#: Human-readable results when ``--json`` is not given (stdout).
out_console = Console()

#: File suffixes a folder given as input expands to, by default.
POSE_SUFFIXES = tuple(SUFFIXES)

R = TypeVar("R")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: inputs ``index, index + count, ...`` (0-based)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"I/N"`` with ``0 <= I < N``; raises :class:`typer.BadParameter` (exit 2)."""
        index, slash, count = text.partition("/")
        if not slash or not index.strip().isdigit() or not count.strip().isdigit():
            raise typer.BadParameter(f"expected I/N with integers 0 <= I < N (e.g. 0/4), got {text!r}")
        shard = cls(int(index), int(count))
        if not 0 <= shard.index < shard.count:
            raise typer.BadParameter(f"expected I/N with 0 <= I < N, got {text!r}")
        return shard

    def select(self, items: Sequence[R]) -> list[R]:
        """Every ``count``-th item starting at ``index``."""
        return list(items[self.index :: self.count])

    @classmethod
    def from_slurm(cls, env: dict[str, str]) -> Shard | None:
        """The shard of a SLURM array task (``SLURM_ARRAY_TASK_ID``, ``_COUNT``, ``_MIN``, ``_STEP``),
        ``None`` outside an array job: ``--array=1-8`` gives shards 0/8 .. 7/8, ``--array=0-30:10``
        shards 0/4 .. 3/4. Raises :class:`typer.BadParameter` for ids that are no such range."""
        if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
            return None
        names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")
        values = [env.get(name, default) for name, default in zip(names, ("", "", "0", "1"))]
        if not all(value.strip().isdigit() for value in values) or int(values[3]) < 1:
            raise typer.BadParameter(f"SLURM array variables {dict(zip(names, values))} are not integers; give --shard I/N")
        task, count, first, step = map(int, values)
        index, offset = divmod(task - first, step)
        if offset or not 0 <= index < count:
            raise typer.BadParameter(
                f"SLURM array task {task} (first {first}, step {step}, {count} tasks) is not one of a regular range; give --shard I/N"
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# Options shared by the commands (use as parameter annotations).
InputsArgument = Annotated[
    list[str],  # strings, not Paths: an empty argument must not become '.'
    typer.Argument(
        metavar="FILE",
        help="Input files; a folder expands to its pose files, a quoted glob pattern to its matches.",
        show_default=False,
    ),
]
ShardOption = Annotated[
    Shard | None,
    typer.Option(
        "--shard",
        metavar="I/N",
        parser=Shard.parse,
        help="Process only inputs I, I+N, I+2N, ... (0-based): shard I of N, e.g. for a job array.",
    ),
]
ContinueOnErrorOption = Annotated[
    bool,
    typer.Option(
        "--continue-on-error",
        help="Go on after a failed input; print a summary and exit 1 at the end if any failed.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Write the results as JSON to stdout.")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files (never an input).")]


def parse_output_file(text: str) -> Path:
    """The file name given to ``-o/--output``; an empty name or a folder is a usage error."""
    if not text.strip():
        raise typer.BadParameter("empty file name, expected the path of the file to write")
    if Path(text).is_dir():
        raise typer.BadParameter(f"{text!r} is a folder, expected the path of the file to write")
    return Path(text)


def output_file_option(help: str) -> Any:
    """The ``-o/--output FILE`` option of a command that writes one file (checked by :func:`parse_output_file`)."""
    return typer.Option("--output", "-o", metavar="<file>", parser=parse_output_file, help=help)


OutputOption = Annotated[Path | None, output_file_option("Output file (only with a single input).")]
OutDirOption = Annotated[
    Path | None, typer.Option("--out-dir", help="Folder for the outputs, named after each input.", file_okay=False)
]
def _device_name(text: str) -> str:
    try:
        return parse_device(text)
    except UsageError as error:
        raise typer.BadParameter(str(error)) from None


DeviceOption = Annotated[
    str,
    typer.Option("--device", metavar="auto|cpu|cuda|cuda:N", parser=_device_name, help="Where the model runs (cuda:N: CUDA device N)."),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1,
        help="CPU threads of torch (default: SLURM_CPUS_PER_TASK in a SLURM job, else the usable cores divided by N with "
        "--shard I/N, so shards side by side do not oversubscribe them, else torch's choice).",
    ),
]


def usage_error(message: str) -> typer.BadParameter:
    """A usage error (exit 2) to ``raise`` for an invalid combination of options."""
    return typer.BadParameter(message)


def check_weights_suffix(path: Path, option: str) -> None:
    """Raise a usage error (exit 2) unless ``path``, given to ``option``, ends in ``.safetensors``."""
    if path.suffix.lower() != WEIGHTS_SUFFIX:
        raise usage_error(f"{option} {path}: expected a {WEIGHTS_SUFFIX} file name")


def expand_inputs(
    paths: Sequence[str | Path], suffixes: Sequence[str] = POSE_SUFFIXES, *, exclude_tag: str | None = None
) -> list[Path]:
    """Expand command-line inputs into a list of files, keeping their order.

    A folder becomes its files ending in one of ``suffixes`` (sorted, not recursive); a path
    that does not exist but contains ``*``, ``?`` or ``[`` is a glob pattern (sorted matches);
    any other path is kept as given (a missing file then fails as that input). Repeated
    files are kept once. An empty string (an unset shell variable) is refused, not read as ``.``.
    With ``exclude_tag`` (say ``".refined"``), folders and patterns leave out the files whose
    stem ends with it, the command's own outputs; a file named as such is kept.

    Raises:
        typer.BadParameter: an empty input or nothing to process (exit 2).
    """
    expanded: list[Path] = []
    for text in paths:
        if str(text) == "":
            raise usage_error("an input is the empty string (an unset shell variable?); give '.' for the current folder")
        path = Path(text)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError:  # e.g. a name too long for the file system: the input fails when it is read
            is_dir, exists = False, True
        if is_dir:
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                raise usage_error(f"folder {path} holds no files ending in {', '.join(suffixes)}")
            expanded.extend(_without_outputs(found, exclude_tag, f"folder {path}"))
        elif not exists and glob.has_magic(str(path)):
            matches = sorted(Path(match) for match in glob.glob(str(path)))
            if not matches:
                raise usage_error(f"pattern {str(path)!r} matches no file")
            expanded.extend(_without_outputs(matches, exclude_tag, f"pattern {str(path)!r}"))
        else:
            expanded.append(path)
    unique: dict[Path, Path] = {}
    for path in expanded:
        unique.setdefault(path.resolve(), path)
    if not unique:
        raise usage_error("no input files given")
    return list(unique.values())


def _without_outputs(files: list[Path], tag: str | None, source: str) -> list[Path]:
    """``files`` less those whose stem ends with ``tag``; a usage error if none is left."""
    if tag is None:
        return files
    kept = [path for path in files if not path.stem.endswith(tag)]
    if not kept:
        raise usage_error(f"{source} holds only outputs (*{tag}.*), which are not taken as inputs; name such a file to use it")
    return kept


def apply_shard(inputs: Sequence[Path], shard: Shard | None) -> list[Path]:
    """This shard's inputs (all of them without ``--shard``); logs the selection on stderr."""
    if shard is None:
        return list(inputs)
    selected = shard.select(inputs)
    log(f"shard {shard}: {len(selected)} of {len(inputs)} inputs")
    return selected


def shard_or_slurm(shard: Shard | None) -> Shard | None:
    """``--shard`` when given, else the SLURM array task's shard (:meth:`Shard.from_slurm`), else ``None``."""
    if shard is not None:
        return shard
    shard = Shard.from_slurm(dict(os.environ))
    if shard is not None:
        log(f"shard {shard} from SLURM_ARRAY_TASK_ID={os.environ['SLURM_ARRAY_TASK_ID']} (give --shard to override)")
    return shard


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM or taskset allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def default_threads(shard: Shard | None) -> int | None:
    """torch threads when ``--threads`` is not given (see :data:`ThreadsOption`); ``None``: torch's choice."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if "SLURM_JOB_ID" in os.environ:
        return int(cpus) if cpus.isdigit() and int(cpus) > 0 else 1
    if shard is not None:
        return max(1, usable_cores() // shard.count)
    return None


def output_paths(
    inputs: Sequence[Path],
    *,
    output: Path | None,
    out_dir: Path | None,
    tag: str,
    suffix: str | None = None,
) -> dict[Path, Path]:
    """The output file of every input (call with all inputs, before :func:`apply_shard`).

    Naming: ``-o FILE`` is the output of the single input; otherwise ``<stem><tag><suffix>``
    (e.g. ``walk.npz`` -> ``walk.refined.npz`` for ``tag=".refined"``; ``suffix`` defaults to
    the input's) in ``out_dir``, or next to the input without ``out_dir``. ``out_dir`` is
    created if missing.

    Raises:
        typer.BadParameter: ``-o`` with several inputs or together with ``--out-dir``, an
            output that is also an input, or two inputs mapping to the same output (exit 2).
        OutputError: ``out_dir`` cannot be created.
    """
    if output is not None and out_dir is not None:
        raise usage_error("give either -o/--output or --out-dir, not both")
    if output is not None:
        if len(inputs) != 1:
            raise usage_error(f"-o/--output takes a single input, got {len(inputs)}; use --out-dir for several")
        outputs = {inputs[0]: output}
    else:
        outputs = {path: (out_dir or path.parent) / f"{path.stem}{tag}{suffix or path.suffix}" for path in inputs}
    resolved_inputs = {path.resolve(): path for path in inputs}
    seen: dict[Path, Path] = {}
    for source, target in outputs.items():
        resolved = target.resolve()
        if resolved in resolved_inputs:
            raise usage_error(f"output {target} is also an input ({resolved_inputs[resolved]}); choose another name")
        if resolved in seen:
            raise usage_error(f"inputs {seen[resolved]} and {source} would both write {target}; rename one or use separate runs")
        seen[resolved] = source
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{out_dir}: cannot create output folder ({error.strerror})") from None
    return outputs


@dataclass
class Outcome(Generic[R]):
    """What happened to one input: its result, or the one-line error that stopped it."""

    path: Path
    value: R | None = None
    error: str | None = None
    refused: bool = False  # failed as out of distribution (refine --strict), not as a bad input

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchResult(Generic[R]):
    """Outcomes of a batch in input order, and the inputs never attempted after a failure."""

    outcomes: list[Outcome[R]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)

    @property
    def values(self) -> list[R]:
        """Results of the inputs that succeeded, in input order."""
        return [outcome.value for outcome in self.outcomes if outcome.ok]

    @property
    def failures(self) -> list[Outcome[R]]:
        """Outcomes of the inputs that failed, in input order."""
        return [outcome for outcome in self.outcomes if not outcome.ok]

    @property
    def exit_code(self) -> ExitCode:
        """``FAILED`` (1) if any input failed, else ``OUT_OF_DISTRIBUTION`` (3) if any was refused
        by ``refine --strict``, else ``OK`` (0)."""
        failures = self.failures
        if any(not outcome.refused for outcome in failures):
            return ExitCode.FAILED
        return ExitCode.OUT_OF_DISTRIBUTION if failures else ExitCode.OK


def _print_summary(batch: BatchResult[Any]) -> None:
    failures = batch.failures
    log(f"summary: {len(batch.outcomes) - len(failures)} succeeded, {len(failures)} failed")
    if failures:
        table = Table("input", "error", title="failed inputs", title_justify="left")
        for outcome in failures:
            message = outcome.error.removeprefix(f"{outcome.path}: ")
            table.add_row(escape(str(outcome.path)), escape(message))
        err_console.print(table)


def run_batch(
    inputs: Sequence[Path],
    process_one: Callable[[Path], R],
    *,
    continue_on_error: bool,
    description: str = "processing",
) -> BatchResult[R]:
    """Call ``process_one(path)`` for each input, reporting failures on stderr.

    A :class:`D3PrefineError` fails its input and is printed as ``error: <message>``.
    Without ``continue_on_error`` the batch stops at the first failure (the rest are
    ``skipped``) and any other exception propagates with its traceback. With it, every input
    is attempted (other exceptions also fail just their input) and a summary of the failed
    inputs is printed at the end. A progress bar shows on an interactive stderr.

    Returns:
        The outcomes; ``exit_code`` is what the command should exit with.
    """
    attempts = ((path, partial(process_one, path)) for path in inputs)
    return run_attempts(inputs, attempts, continue_on_error=continue_on_error, description=description)


def run_attempts(
    inputs: Sequence[Path],
    attempts: Iterable[tuple[Path, Callable[[], R]]],
    *,
    continue_on_error: bool,
    description: str = "processing",
) -> BatchResult[R]:
    """:func:`run_batch` for work done ahead of time (e.g. batched across inputs): ``attempts``
    yields ``(path, finish)`` for the ``inputs`` in order, and ``finish()`` returns the input's
    result or raises the error that failed it, handled as in :func:`run_batch`. Iteration stops
    at the first failure without ``continue_on_error``; an exception raised by ``attempts``
    itself is not an input's and propagates."""
    batch: BatchResult[R] = BatchResult()
    # stdout is never redirected into the progress display: it carries the results.
    with Progress(
        console=err_console, transient=True, redirect_stdout=False, disable=not err_console.is_terminal
    ) as progress:
        task = progress.add_task(description, total=len(inputs))
        for position, (path, finish) in enumerate(attempts):
            try:
                batch.outcomes.append(Outcome(path, value=finish()))
            except D3PrefineError as error:
                batch.outcomes.append(Outcome(path, error=str(error), refused=isinstance(error, OutOfDistributionError)))
                report_error(error)
            except Exception as error:
                if not continue_on_error:
                    raise
                message = f"{path}: unexpected {type(error).__name__}: {error}"
                batch.outcomes.append(Outcome(path, error=message))
                report_error(message)
            progress.advance(task)
            if not batch.outcomes[-1].ok and not continue_on_error:
                batch.skipped = list(inputs[position + 1 :])
                break
    if batch.skipped:
        count = len(batch.skipped)
        log(f"stopped after the first failure: {count} input{'s' if count > 1 else ''} not processed (use --continue-on-error)")
    if continue_on_error and len(inputs) > 1:
        _print_summary(batch)
    return batch


def device_option(device: Device | str) -> str:
    """:func:`~d3prefine.runtime.resolve_device` for ``--device``; an unavailable device is a usage error (exit 2)."""
    try:
        return resolve_device(device)
    except UsageError as error:
        raise typer.BadParameter(str(error), param_hint="'--device'") from None


def emit_json(data: Any) -> None:
    """Write ``data`` as one JSON document to stdout (see :func:`jsonable`)."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")
    sys.stdout.flush()
