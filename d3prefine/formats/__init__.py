"""Readers and writers of other estimators' files, one module per source format.

Each module defines ``read(options) -> list[SourceData]`` (see :mod:`d3prefine.formats.base`)
and ``write(source, details, poses_3d, output)``, which writes 3D poses in the source's own
layout, units and axes into a file shaped like the ``source`` file. :data:`FORMATS` maps
every :class:`SourceFormat` to its module; :mod:`d3prefine.convert` does the rest.
"""

from __future__ import annotations

from enum import Enum
from types import ModuleType

from d3prefine.formats import arrays, mediapipe, mmpose, motionbert, videopose3d


class SourceFormat(str, Enum):
    """The formats ``d3prefine convert`` reads (and ``d3prefine export --to source`` writes)."""

    VIDEOPOSE3D = "videopose3d"
    MOTIONBERT = "motionbert"
    MMPOSE = "mmpose"
    MEDIAPIPE = "mediapipe"
    ARRAYS = "arrays"


FORMATS: dict[SourceFormat, ModuleType] = {
    SourceFormat.VIDEOPOSE3D: videopose3d,
    SourceFormat.MOTIONBERT: motionbert,
    SourceFormat.MMPOSE: mmpose,
    SourceFormat.MEDIAPIPE: mediapipe,
    SourceFormat.ARRAYS: arrays,
}
