"""Build hook: the shipped weights become package data of the wheel.

``weights/`` stays at the top of the repository (recipes, benchmarks and docs name it there);
building copies its ``denoiser.safetensors``, ``noise.safetensors`` and ``README.md``, and those
of the other shipped sets (``weights/pool/``), into ``d3prefine/weights/`` of the build, so ``pip install .`` (not editable) gives a d3prefine whose
``Refiner.from_pretrained()`` and ``d3prefine refine`` work from any directory.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEIGHTS = ("denoiser.safetensors", "noise.safetensors", "README.md", "pool/denoiser.safetensors", "pool/noise.safetensors")


class BuildPyWithWeights(build_py):
    """``build_py`` that also copies the shipped weights into the package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "d3prefine" / "weights"
        for name in WEIGHTS:
            self.mkpath(str((target / name).parent))
            self.copy_file(str(Path("weights") / name), str(target / name))


setup(cmdclass={"build_py": BuildPyWithWeights})
