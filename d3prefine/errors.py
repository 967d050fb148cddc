"""Exceptions and process exit codes.

Every error meant for a user is a :class:`D3PrefineError` whose message is one line that
names the file, the key and what was expected versus what was found.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``d3prefine`` command (documented in README)."""

    OK = 0
    FAILED = 1  # at least one input failed (bad file, bad weights, unwritable output)
    USAGE = 2  # bad command line: unknown option, invalid value, nothing to do
    OUT_OF_DISTRIBUTION = 3  # refine --strict: an input's guard score was above the threshold (no other failure)
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2, as a shell reports it
    TERMINATED = 143  # SIGTERM (a scheduler's cancel or time limit): 128 + 15


class D3PrefineError(Exception):
    """Base class of all errors reported to users as one line."""


class InputError(D3PrefineError):
    """A pose file (or array) is missing, unreadable or invalid."""


class WeightsError(D3PrefineError):
    """A weights or noise-statistics file is missing, unreadable or does not match the input."""


class OutOfDistributionError(D3PrefineError):
    """``refine --strict``: the inputs lie too far from the weights' training data (the guard)."""


class OutputError(D3PrefineError):
    """An output cannot be written (exists without --overwrite, would replace an input, unwritable)."""


class UsageError(D3PrefineError):
    """An option value or combination that cannot work (e.g. CUDA requested but unavailable, noise
    statistics other than those the weights were trained with); exit code 2."""
