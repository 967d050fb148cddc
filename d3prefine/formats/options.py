"""The options of a conversion, shared by every source-format reader."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class Units(str, Enum):
    """Units of a plain 3D array: metres, centimetres, millimetres, or normalised/arbitrary
    (then ``--scale-to-height`` gives the scale)."""

    M = "m"
    CM = "cm"
    MM = "mm"
    NORMALISED = "normalised"


#: Metres per unit (``None``: no physical unit).
METRES_PER_UNIT: dict[Units, float | None] = {Units.M: 1.0, Units.CM: 0.01, Units.MM: 0.001, Units.NORMALISED: None}


@dataclass(frozen=True)
class ConvertOptions:
    """Inputs and facts a reader may need; each format documents which it uses.

    Attributes:
        poses_2d: the 2D file.
        poses_3d: the 3D file (the estimator's output).
        gt: a ground-truth 3D file (VideoPose3D ``data_3d_*.npz``).
        layout_2d, layout_3d: keypoint layouts of plain arrays (and of MMPose 2D).
        units: units of plain 3D arrays.
        image_size: ``(width, height)`` pixels, where the files do not say.
        fps: frames per second, where the files do not say.
        allow_pickle: let the VideoPose3D reader unpickle its dictionaries (trusted files only).
        person: which detection of a frame (index in the frame's list; AlphaPose: its ``idx``).
        sequence: which sequence of a multi-sequence source to pair with a single 3D array.
        cameras: VideoPose3D-style extrinsics JSON (``{subject: [{orientation, translation}, ...]}``).
        name: name of the converted sequence (single-sequence sources; default: the 3D file's stem).
    """

    poses_2d: Path | None = None
    poses_3d: Path | None = None
    gt: Path | None = None
    layout_2d: str = "h36m17"
    layout_3d: str = "h36m17"
    units: Units = Units.M
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    allow_pickle: bool = False
    person: int | None = None
    sequence: str | None = None
    cameras: Path | None = None
    name: str | None = None

    def required(self, attribute: str, option: str, why: str) -> Path:
        """The path ``attribute`` (given as ``option``), or :class:`InputError` saying it is needed."""
        from d3prefine.errors import InputError

        value = getattr(self, attribute)
        if value is None:
            raise InputError(f"{option} is required: {why}")
        return value

    def image_size_for(self, path: Path, why: str) -> tuple[int, int]:
        """``image_size``, or :class:`InputError` naming ``path`` and ``why`` its files need it."""
        from d3prefine.errors import InputError

        if self.image_size is None:
            raise InputError(f"{path}: {why}: give --image-size WIDTH HEIGHT")
        return self.image_size
