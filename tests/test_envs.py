"""The conda environment pins the same versions as envs/requirements.txt."""

import re

import yaml
from conftest import REPO


def pins(lines):
    return dict(re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)==(\S+)", line).groups() for line in lines if "==" in line)


def test_conda_env_pins_match_requirements():
    requirements = pins((REPO / "envs" / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs" / "nnunet.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = pins(pip_section)
    assert conda_pins and all(requirements[name] == version for name, version in conda_pins.items())
    assert {"torch", "nnunetv2", "SimpleITK", "pandas", "numpy"} <= conda_pins.keys()
