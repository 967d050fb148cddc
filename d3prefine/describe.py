"""JSON-ready descriptions of pose files and safetensors weights files (what ``d3prefine info`` prints).

Pose files are validated (NaN gaps allowed); weights files are read without loading a tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from d3prefine.errors import WeightsError
from d3prefine.io import PoseSequence, load_poses

#: Suffix of weights, noise-statistics and checkpoint files.
WEIGHTS_SUFFIX = ".safetensors"


def describe_sequence(seq: PoseSequence) -> dict[str, Any]:
    """JSON-ready summary of one sequence: sizes, arrays (shape, NaN count) and metadata."""
    return {
        "name": seq.name,
        "frames": seq.num_frames,
        "joints": seq.layout.num_joints,
        "joint_layout": seq.joint_layout,
        "arrays": {
            key: {"shape": list(array.shape), "nan": int(np.isnan(array).sum())} for key, array in seq.arrays().items()
        },
        "fps": seq.fps,
        "duration_s": seq.num_frames / seq.fps if seq.fps else None,
        "image_size": list(seq.image_size) if seq.image_size else None,
        "units": seq.units,
        "provenance": seq.provenance,
    }


def _parse_metadata_value(text: str) -> Any:
    """A metadata string as JSON when it is a JSON object or array, else the string itself."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def describe_weights(path: Path) -> dict[str, Any]:
    """Metadata and tensor names, shapes and dtypes of a safetensors file (no tensor is loaded)."""
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            slices = {name: handle.get_slice(name) for name in handle.keys()}
            tensors = {name: {"shape": list(s.get_shape()), "dtype": s.get_dtype()} for name, s in slices.items()}
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path}: not a valid safetensors file ({error})") from None
    return {
        "file": str(path),
        "kind": "weights",
        "metadata": {key: _parse_metadata_value(value) for key, value in sorted(metadata.items())},
        "tensors": tensors,
    }


def describe_file(path: Path) -> dict[str, Any]:
    """JSON-ready description of a pose file (validated, NaN gaps allowed) or a weights file."""
    if path.suffix.lower() == WEIGHTS_SUFFIX:
        return describe_weights(path)
    sequences = load_poses(path, allow_nan=True)
    return {"file": str(path), "kind": "poses", "sequences": [describe_sequence(seq) for seq in sequences]}
