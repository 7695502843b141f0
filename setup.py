"""Packaging for fink-t2: a fast, light TFLite transformer classifier for ZTF/Fink alerts."""

from setuptools import find_packages, setup

# Lower bounds are Fink's ZTF image (Python 3.9, numpy 1.23.5, pandas 1.3.5, pyarrow 9.0.0): installing
# fink-t2 into Fink's images must never upgrade their pinned packages (Fink installs without constraints).
RUNTIME = [
    "numpy>=1.23.5,<3",
    "pandas>=1.3.5,<4",
    "pyarrow>=9,<27",
    # pyarrow < 14.0.1 unpickles extension types from file metadata (CVE-2023-47248): fink_t2 imports the
    # hotfix where the installed pyarrow needs it (fink_t2.scoring.arrow_safety); a no-op on newer pyarrow.
    "pyarrow-hotfix>=0.6,<1",
    "pyyaml>=6,<7",
    "tqdm>=4.60,<5",  # the batch scorer's progress bar
    # The LiteRT interpreter. From 2.2 on ai-edge-litert requires ml_dtypes, whose newest release needs
    # numpy 2: a plain install into Fink's numpy 1.2x images would upgrade numpy and break pandas. The 1.2 to
    # 2.1 wheels need only numpy >= 1.23.2 (2.1.0 is the newest with a Python 3.9 wheel). Python 3.14+ wheels
    # start at 2.1.x too.
    "ai-edge-litert>=1.2,<2.2",
]

# The Spark science module, `fink-t2 score --engine spark` and `fink-t2 stream` (Fink runs 3.4; tested:
# 3.4.1, 3.5.9, 4.x in .ci/run). Scoring with pandas (`fink_t2.classify`, `--engine pandas`) needs none.
SPARK = ["pyspark>=3.4.1,<5"]

TRAIN = [
    "tensorflow>=2.16,<2.22",
    "tf-keras>=2.16,<2.22",
    "tensorflow-model-optimization>=0.8,<0.9",
    "matplotlib>=3.7,<4",
]

# `fink-t2 score` on Avro alert files (Fink's distribution format; fink_t2.tools.avro_alerts).
AVRO = ["fastavro>=1.6,<2"]  # Fink's ZTF image: 1.6.0

TEST = ["pytest>=7", "hypothesis>=6.80", "ruff>=0.5", *AVRO, *SPARK]

# Benchmark / baseline only (never imported when scoring): the Fink-deployed t2 procedure (george,
# the fink-science 7.4.0 model file) and Fink's own modules for `fink-t2 bench`. fink-science and
# fink-utils declare no dependencies of their own; SuperNNova needs a separate
# `pip install --no-deps supernnova==3.0.51` (its metadata pins packages that clash with numpy 2),
# and torch must be the CPU build (see docs/performance.md).
BENCH = [
    "fink-science==7.4.0", "fink-utils==0.79.0", "george>=0.4.3,<0.5", "matplotlib>=3.7,<4",
    "torch==2.13.0", "h5py>=3.10", "natsort>=8", "colorama>=0.4", "tqdm>=4.60", "seaborn>=0.13",
    "scikit-learn>=1.3", "astropy>=6.1", "pandas<2.3", "light-curve>=0.13,<1", "onnxruntime>=1.17",
    "line_profiler>=4.1",
]

setup(
    name="fink-t2",
    version="0.1.0",
    description="Time-series transformer (t2) classifier of ZTF alerts for the Fink broker, served by LiteRT",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["fink_t2", "fink_t2.*"]),
    # resources/: the sample alerts and the default configurations (symbolic links to data/ and conf/ in
    # the checkout; the build copies the files they point to).
    package_data={"fink_t2": ["data/*.tflite", "data/*.yaml", "data/*.keras", "data/*.json", "data/*.parquet",
                              "resources/*.parquet", "resources/conf/*.yaml"]},
    install_requires=RUNTIME,
    extras_require={"spark": SPARK, "train": TRAIN, "test": TEST, "bench": BENCH, "avro": AVRO,
                    "tflite-runtime": ["tflite-runtime>=2.14"]},
    entry_points={"console_scripts": ["fink-t2=fink_t2.tools.cli:main"]},
)
