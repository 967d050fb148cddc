"""d3prefine: refine the 3D human poses of monocular estimators with a conditional diffusion model.

Library entry points::

    from d3prefine import Refiner, load_poses, save_poses
    refiner = Refiner.from_pretrained()          # the weights shipped in weights/
    result = refiner.refine(poses_2d, poses_3d, image_size=(1000, 1000), steps=1)
    result.poses_3d                               # (T, J, 3) metres, camera frame
"""

from importlib.metadata import PackageNotFoundError, version

from d3prefine.io import PoseSequence, load_poses, save_poses

try:
    __version__ = version("d3prefine")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["PoseSequence", "RefineResult", "Refiner", "__version__", "load_poses", "save_poses"]


def __getattr__(name: str):
    """``Refiner`` and ``RefineResult`` load torch, so they are imported on first use."""
    if name in ("Refiner", "RefineResult"):
        from d3prefine import refine

        return getattr(refine, name)
    raise AttributeError(f"module 'd3prefine' has no attribute {name!r}")
