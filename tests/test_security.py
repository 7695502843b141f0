"""Security of the scoring and streaming path.

* nothing it loads is unpickled (static check of the code, and pickle booby-trapped while scoring);
* YAML is safe-loaded: python tags in a configuration or model metadata file are refused, not run;
* paths from the configuration are never executed or passed to a shell (static check, and paths
  full of shell syntax used literally);
* the model's sha256 is checked before the TFLite interpreter sees any byte, and the interpreter
  gets exactly the verified bytes (never a path it would read again).

Spark itself moves the UDF to its workers with cloudpickle; that is Spark's transport of the
code, not data the module loads, and is out of scope here.
"""

from __future__ import annotations

import ast
import dataclasses
import pickle
from pathlib import Path

import pytest
import yaml
from conftest import copy_model

from fink_t2.scoring import runtime
from fink_t2.scoring.config import ConfigError
from fink_t2.scoring.cuts import load_cuts
from fink_t2.scoring.runtime import DEFAULT_MODEL, ModelFileError, load_model, metadata_path, sha256_of
from fink_t2.spark.stream_config import load_stream_config

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fink_t2"
#: Entry points of the scoring and streaming path (the whole serving core, the Spark layer, the batch
#: scorer); the check follows their fink_t2 imports.
ENTRY_POINTS = [ROOT / "run_t2_stream.py", PACKAGE / "__init__.py", *sorted((PACKAGE / "scoring").glob("*.py")),
                *sorted((PACKAGE / "spark").glob("*.py")), PACKAGE / "tools" / "batch.py"]
#: Subpackages that must never be on that path (TensorFlow, training, benchmarks).
OFF_PATH = {"training", "bench"}

FORBIDDEN_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal",
                     "subprocess", "pty", "commands"}
FORBIDDEN_CALLS = {
    "eval", "exec", "compile", "__import__",
    "os.system", "os.popen", "os.execv", "os.execve", "os.execvp", "os.execl", "os.spawnv", "os.spawnl",
    "os.posix_spawn", "np.load", "numpy.load", "pd.read_pickle", "pandas.read_pickle",
    "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _module_file(dotted: str) -> Path:
    """The file of a fink_t2 module or package (``fink_t2.scoring`` -> its ``__init__.py``); it must exist."""
    base = ROOT.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise AssertionError(f"{dotted} is imported but is no module of the package")


def _fink_imports(tree: ast.AST) -> set[str]:
    """fink_t2 modules a file imports (anywhere, lazily included), as dotted names."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fink_t2":
            found.add(node.module)
            for alias in node.names:  # ``from fink_t2.scoring import runtime``: a sub-module
                candidate = ROOT.joinpath(*node.module.split("."), alias.name)
                if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
                    found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "fink_t2")
    return found


def scoring_path_files() -> list[Path]:
    """The entry points and every fink_t2 module they import, transitively."""
    todo, seen = list(ENTRY_POINTS), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        todo.extend(_module_file(name) for name in _fink_imports(seen[path]))
    return sorted(seen)


def test_scoring_path_has_no_unpickling_no_shell_no_unsafe_yaml():
    files = scoring_path_files()
    names = {p.stem for p in files}
    assert {"classifier", "processor", "stream", "batch", "runtime", "lightcurves", "config", "run_t2_stream"} <= names
    subpackages = {p.relative_to(PACKAGE).parts[0] for p in files if PACKAGE in p.parents and p.parent != PACKAGE}
    assert subpackages == {"scoring", "spark", "tools"}, subpackages
    assert not subpackages & OFF_PATH, subpackages & OFF_PATH
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{path.name}: import {a.name}" for a in node.names
                             if a.name.split(".")[0] in FORBIDDEN_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"{path.name}: from {node.module} import ...")
            elif isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in FORBIDDEN_CALLS or name.startswith(("subprocess.", "pickle.")):
                    problems.append(f"{path.name}:{node.lineno}: {name}()")
                if any(k.arg == "shell" for k in node.keywords):
                    problems.append(f"{path.name}:{node.lineno}: shell=")
                if name.startswith("yaml.") and name not in ("yaml.safe_load", "yaml.safe_dump"):
                    problems.append(f"{path.name}:{node.lineno}: {name}()")
    assert not problems, problems


def test_the_static_check_sees_what_it_looks_for(tmp_path):
    """The checker flags each forbidden construct (so a clean result means something)."""
    bad = ("import pickle\nimport subprocess as sp\nfrom joblib import load\nimport os, yaml\n"
           "os.system(path)\nyaml.load(text)\nsubprocess.run(cmd, shell=True)\neval(x)\n")
    tree = ast.parse(bad)
    imports = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    calls = [_dotted(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert {"pickle", "subprocess"} <= set(imports) & FORBIDDEN_MODULES
    assert {"os.system", "yaml.load", "eval"} <= set(calls) & FORBIDDEN_CALLS


# --------------------------------------------------------------------------- pickle booby-trapped


@pytest.fixture
def no_pickle(monkeypatch):
    """Every way into the unpickler raises (and is recorded) for the duration of the test."""
    calls = []

    def trap(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError("something was unpickled")

    class TrapUnpickler:
        def __init__(self, *args, **kwargs):
            trap(*args)

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, trap)
    monkeypatch.setattr(pickle, "Unpickler", TrapUnpickler)
    return calls


def test_scoring_never_unpickles(no_pickle, tmp_path, sample_path, sample_columns):
    from fink_t2 import classify
    from fink_t2.tools.batch import score_pandas

    model = copy_model(tmp_path, name="m.tflite")
    before = runtime.LOAD_COUNT
    probs = classify(sample_columns, model_path=model)  # a fresh load: file, metadata, interpreter
    assert runtime.LOAD_COUNT == before + 1 and probs.notna().any(axis=None)
    cuts = load_cuts(ROOT / "conf" / "cuts.yaml")  # YAML, parsed without pickle
    assert cuts.enabled
    cuts = dataclasses.replace(cuts, exclude_solar_system=False, extragalactic_xmatch=False)  # raw alerts
    table = score_pandas(sample_path, tmp_path / "out.parquet", model_path=model, cuts=cuts, progress=False)
    assert table.num_rows == len(sample_columns)
    assert no_pickle == []
    with pytest.raises(AssertionError, match="unpickled"):  # the trap is armed
        pickle.loads(pickle.dumps(1))


# --------------------------------------------------------------------------- YAML safe-loading


def _payload(canary: Path) -> str:
    """A YAML value that runs a shell command when loaded unsafely."""
    return f"!!python/object/apply:os.system ['touch {canary}']"


def test_unsafe_yaml_would_run_the_payload(tmp_path):
    """Control: the payload works on an unsafe loader, so the refusals below are meaningful."""
    canary = tmp_path / "ran"
    yaml.unsafe_load(f"x: {_payload(canary)}")
    assert canary.exists()


def test_python_tags_are_refused_everywhere(tmp_path):
    canary = tmp_path / "ran"
    stream = tmp_path / "stream.yaml"
    stream.write_text(f"input: {_payload(canary)}\noutput: b\ncheckpoint: c\n")
    with pytest.raises(ConfigError, match="stream.yaml: not valid YAML"):
        load_stream_config(stream)
    cuts = tmp_path / "cuts.yaml"
    cuts.write_text(f"cuts:\n  enabled: {_payload(canary)}\n")
    with pytest.raises(ConfigError, match="cuts.yaml: not valid YAML"):
        load_cuts(cuts)
    model = tmp_path / "model.tflite"
    model.write_bytes(DEFAULT_MODEL.read_bytes())
    meta = metadata_path(DEFAULT_MODEL).read_text()
    metadata_path(model).write_text(meta.replace("model_file: t2.tflite", f"model_file: {_payload(canary)}"))
    with pytest.raises(ModelFileError, match="is not valid YAML"):
        load_model(model)
    name_tag = tmp_path / "name.yaml"
    name_tag.write_text("input: !!python/name:os.system\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_stream_config(name_tag)
    assert not canary.exists()


# --------------------------------------------------------------------------- paths are literal

#: A folder name full of shell syntax: executed by a shell, it would create PWNED and delete the canary.
HOSTILE_NAME = "t2 out; touch PWNED; rm -rf CANARY; $(touch PWNED) `touch PWNED` | tee x & "


def _hostile_dirs(tmp_path: Path) -> tuple[Path, Path]:
    canary = tmp_path / "CANARY"
    canary.mkdir()
    (canary / "keep").write_text("still here")
    folder = tmp_path / HOSTILE_NAME
    folder.mkdir()
    return folder, canary


def _assert_no_shell(tmp_path: Path, canary: Path) -> None:
    assert (canary / "keep").read_text() == "still here"
    for where in (tmp_path, ROOT, Path.cwd()):
        assert not (where / "PWNED").exists() and not (where / "x").exists()


def test_paths_with_shell_syntax_are_literal_in_batch_scoring(tmp_path, sample_path):
    from fink_t2.tools.cli import main as cli_main

    folder, canary = _hostile_dirs(tmp_path)
    source = folder / "in; ls.parquet"
    source.write_bytes(sample_path.read_bytes())
    model = copy_model(folder, name="model $(id).tflite")
    cuts = folder / "cuts `id`.yaml"
    cuts.write_text("cuts:\n  enabled: false\n")
    out = folder / "out && id.parquet"
    assert cli_main(["score", str(source), "--engine", "pandas", "--model", str(model), "--cuts-config", str(cuts),
                     "--output", str(out), "--no-progress"]) == 0
    assert out.exists()
    _assert_no_shell(tmp_path, canary)


@pytest.mark.spark
def test_paths_with_shell_syntax_are_literal_in_the_stream(spark, tmp_path, sample_table, stream_module):
    import pyarrow.parquet as pq

    stream = stream_module
    folder, canary = _hostile_dirs(tmp_path)
    raw, out, ckpt = folder / "raw; id", folder / "out $(id)", folder / "ckpt `id`"
    raw.mkdir()
    pq.write_table(sample_table.slice(0, 40), raw / "alerts.parquet")
    model = copy_model(folder, name="model; id.tflite")
    config = folder / "stream; id.yaml"
    config.write_text(yaml.safe_dump({"input": str(raw), "output": str(out), "checkpoint": str(ckpt),
                                      "model_path": str(model), "max_files_per_trigger": 1}))
    assert stream.main(["--config", str(config), "--once"], spark=spark) == 0
    candids = {r.candid for r in spark.read.parquet(str(out)).select("candid").collect()}
    assert candids == set(sample_table.slice(0, 40).column("candid").to_pylist())
    _assert_no_shell(tmp_path, canary)


# --------------------------------------------------------------------------- sha256 before the interpreter


class _Recorder:
    """Stands in for the interpreter class: records every construction, then builds the real one."""

    calls: list[dict] = []
    real = None

    def __new__(cls, *args, **kwargs):
        cls.calls.append(dict(kwargs, args=args))
        return cls.real(*args, **kwargs)


@pytest.fixture
def recorder(monkeypatch):
    _Recorder.calls = []
    _Recorder.real = runtime.interpreter_class()
    monkeypatch.setattr(runtime, "interpreter_class", lambda: _Recorder)
    return _Recorder


@pytest.mark.parametrize("damage", ["flipped_byte", "appended_byte", "truncated", "replaced_same_size"])
def test_tampered_model_never_reaches_the_interpreter(damage, tmp_path, recorder):
    data = bytearray(DEFAULT_MODEL.read_bytes())
    if damage == "flipped_byte":
        data[len(data) // 3] ^= 0x80
    elif damage == "appended_byte":
        data += b"\x00"
    elif damage == "truncated":
        data = data[:-1]
    else:
        data = bytearray(b"\x00" * len(data))
    with pytest.raises(ModelFileError, match="sha256|truncated"):
        load_model(copy_model(tmp_path, bytes(data)))
    assert recorder.calls == []


def test_interpreter_gets_exactly_the_verified_bytes(tmp_path, recorder):
    path = copy_model(tmp_path)
    model = load_model(path)
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert "model_path" not in call and call["args"] == ()  # bytes, never a path to read again
    assert sha256_of(call["model_content"]) == yaml.safe_load(metadata_path(path).read_text())["sha256"]
    assert model.input_shape[1] == model.preparation.n_channels
