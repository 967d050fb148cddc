"""Build hook: the shipped weights become package data of the wheel.

``weights/`` stays at the top of the repository (recipes, benchmarks and docs name it there);
building copies its ``README.md`` and every ``denoiser.safetensors`` and ``noise.safetensors``
below it (the default set and those of ``d3prefine.refine.SHIPPED_SETS``, e.g. ``weights/varied/``;
``MANIFEST.in`` puts the same files in the sdist) into ``d3prefine/weights/`` of the build, so
``pip install .`` (not editable) gives a d3prefine whose ``Refiner.from_pretrained()`` and
``d3prefine refine`` work from any directory.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_FILES = ("denoiser.safetensors", "noise.safetensors")  # of every set below weights/


class BuildPyWithWeights(build_py):
    """``build_py`` that also copies the shipped weights into the package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "d3prefine" / "weights"
        source = Path("weights")
        for path in [source / "README.md", *(p for name in SHIPPED_FILES for p in source.rglob(name))]:
            name = path.relative_to(source)
            self.mkpath(str((target / name).parent))
            self.copy_file(str(path), str(target / name))


setup(cmdclass={"build_py": BuildPyWithWeights})
