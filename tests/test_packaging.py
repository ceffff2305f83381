"""The library as a distribution: the wheel holds `ip` only and requires none of the study's
stack; every exported name is documented; the README's library section runs as written."""
from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import ip

ROOT = Path(__file__).resolve().parents[1]
STUDY_STACK = {"dvc", "dvclive", "pandas", "matplotlib", "seaborn", "vl-convert-python", "tqdm", "pyyaml",
               "torchvision"}


def public_members(obj):
    """(qualified name, object) of what the API page shows: a class's own public methods."""
    for name, member in vars(obj).items():
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod))):
            continue
        yield f"{obj.__name__}.{name}", member


def undocumented() -> list[str]:
    missing = []
    for name in ip.__all__:
        obj = getattr(ip, name)
        if name == "__version__":
            continue
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            missing += [qual for qual, member in public_members(obj)
                        if not (inspect.getdoc(getattr(member, "__func__", member)) or "").strip()]
    return missing


def test_every_exported_name_and_its_public_methods_have_a_docstring():
    assert undocumented() == []


def test_the_version_is_the_distributions():
    assert re.fullmatch(r"\d+\.\d+\.\d+", ip.__version__)
    text = (ROOT / "pyproject.toml").read_text()
    assert 'version = { attr = "ip.__version__" }' in text


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from the library's files alone (no build isolation: no network)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ip", src / "ip", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pipeline", "study", "analysis"):        # present beside it, as in the repository
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, text=True)
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_holds_the_package_ip_only(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ip"}
    assert "ip/py.typed" in names and "ip/sparse_files.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_wheels_core_requirements_are_free_of_the_study_stack(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode())
    requires = meta.get_all("Requires-Dist")
    core = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert core == {"torch", "numpy", "scipy", "pydantic", "safetensors"}
    torch_req = next(r for r in requires if r.startswith("torch") and "extra" not in r)
    assert "==" not in torch_req and ">=" in torch_req
    extras = {m.group(1) for r in requires for m in [re.search(r'extra == "(\w+)"', r)] if m}
    assert {"study", "test", "docs", "onnx"} <= extras
    study = {re.split(r"[<>=!~ ;\[]", r)[0].lower() for r in requires if 'extra == "study"' in r}
    assert STUDY_STACK <= study
    assert meta["Version"] == ip.__version__ and meta["License-Expression"] == "MIT"


def readme_library_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_library_section_runs_as_written(tmp_path, monkeypatch):
    snippets = readme_library_snippets()
    assert len(snippets) >= 2
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), scope)     # one scope: later snippets use earlier names
