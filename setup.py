"""Packaging for fink-t2: a fast, light TFLite transformer classifier for ZTF/Fink alerts."""

from setuptools import find_packages, setup

RUNTIME = [
    "numpy>=1.26,<3",
    "pandas>=1.5,<3",
    "pyarrow>=14,<27",
    "pyspark>=3.5,<5",
    "pyyaml>=6,<7",
    "ai-edge-litert>=1.2,<3",
]

TRAIN = [
    "tensorflow>=2.16,<2.22",
    "tf-keras>=2.16,<2.22",
    "tensorflow-model-optimization>=0.8,<0.9",
    "matplotlib>=3.7,<4",
]

TEST = ["pytest>=7", "hypothesis>=6.80", "ruff>=0.5"]

BENCH = ["george>=0.4.3,<0.5", "fink-science==7.4.0", "matplotlib>=3.7,<4"]

setup(
    name="fink-t2",
    version="0.1.0",
    description="Time-series transformer (t2) classifier of ZTF alerts for the Fink broker, served by LiteRT",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["fink_t2", "fink_t2.*"]),
    package_data={"fink_t2": ["data/*.tflite", "data/*.yaml", "data/*.keras", "data/*.json"]},
    install_requires=RUNTIME,
    extras_require={"train": TRAIN, "test": TEST, "bench": BENCH, "tflite-runtime": ["tflite-runtime>=2.14"]},
    entry_points={"console_scripts": ["fink-t2=fink_t2.cli:main"]},
)
