"""The LLM instrumentation against the previous majors of the SDKs, still in wide use.

tests/test_llm_instrumentation.py runs in .venv with the current majors (constraints.txt). Here it
runs again, unchanged, in one venv per SDK set of tests/sdk-majors-constraints.txt: that file has a
section per set (a ``# [name]`` line, then its pins), which pins the SDKs and every package they bring
in that constraints.txt does not pin, or pins to a version they cannot use. A venv is built once per
machine under ``${OTEL_MIGRATION_CACHE:-$HOME/.cache/otel-migration}/sdk-majors/<name>`` and again
only when what it was built from changes (a stamp holds the hash). It holds the project's
dependencies, not the project: the run puts the repository first on PYTHONPATH, so the venv serves
any clone.

A venv installs the dependencies of pyproject.toml (``dependencies`` and the ``dev`` extra, whose
ranges the pinned SDKs must fall in) under constraints.txt less the lines of the packages that the
section pins, plus the section's pins. To add a set or move one: edit its section, run this file
(the build fails naming any installed package that is pinned nowhere), and copy the missing lines
from ``<venv>/bin/python -m pip freeze`` into the section.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "tests" / "sdk-majors-constraints.txt"
PROJECT_CONSTRAINTS = ROOT / "constraints.txt"
CACHE = Path(os.environ.get("OTEL_MIGRATION_CACHE") or Path.home() / ".cache" / "otel-migration")
VENVS = CACHE / "sdk-majors"
#: Variables that would configure the SDKs, our package or the inner pytest from the outside.
FOREIGN_ENV = ("OTEL_", "ANTHROPIC_", "OPENAI_", "PYTEST_")

_SECTION = re.compile(r"#\s*\[(?P<name>[\w.-]+)\]\s*$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return canonical(re.split(r"[\s<>=!~;\[@]", line.strip(), maxsplit=1)[0])


def requirement_lines(text: str) -> list[str]:
    return [s for s in (line.split("#", 1)[0].strip() for line in text.splitlines()) if s]


def sdk_sets() -> dict[str, list[str]]:
    """The pins of each section of tests/sdk-majors-constraints.txt, by section name."""
    sets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in PINS.read_text().splitlines():
        if match := _SECTION.match(line.strip()):
            current = sets.setdefault(match["name"], [])
        elif current is not None:
            current.extend(requirement_lines(line))
    return sets


def project_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["dev"]]


def constraints_for(pins: list[str]) -> str:
    """constraints.txt without the packages that ``pins`` pins, then ``pins``."""
    pinned = {requirement_name(pin) for pin in pins}
    kept = [
        line
        for line in requirement_lines(PROJECT_CONSTRAINTS.read_text())
        if requirement_name(line) not in pinned
    ]
    return "\n".join([*kept, *pins]) + "\n"


def run(command: list[str], *, timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # type: ignore[call-overload]
        command, capture_output=True, text=True, timeout=timeout, check=False, cwd=VENVS, **kwargs
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result  # type: ignore[no-any-return]


def venv_for(name: str, pins: list[str]) -> Path:
    """The venv of one SDK set, built under a lock unless its stamp says it is current."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    requirements = project_requirements()
    digest = hashlib.sha256()
    for part in (
        PINS.read_bytes(),
        PROJECT_CONSTRAINTS.read_bytes(),
        "\n".join(requirements).encode(),
        f"{sys.version}\n{getattr(sys, '_base_executable', sys.executable)}".encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    stamp = venv / ".stamp"
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building the same venv: wait for it
        if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
            return venv
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        # Outside the repository: its otel_migration.egg-info must not look installed to pip freeze.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        run([sys.executable, "-m", "venv", str(venv)], timeout=300, env=env)
        constraints = venv / "sdk-majors-constraints.txt"
        constraints.write_text(constraints_for(pins))
        run(
            [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *requirements],
            timeout=3600,
            env=env,
        )
        run([str(python), "-m", "pip", "check"], timeout=300, env=env)
        frozen = run([str(python), "-m", "pip", "freeze"], timeout=300, env=env).stdout
        pinned = {requirement_name(line) for line in requirement_lines(constraints.read_text())}
        unpinned = [line for line in requirement_lines(frozen) if requirement_name(line) not in pinned]
        assert not unpinned, f"pin these under [{name}] in {PINS.relative_to(ROOT)}: {unpinned}"
        stamp.write_text(digest.hexdigest())
        print(f"built {venv} in {time.monotonic() - started:.0f} s")
        return venv


SETS = sdk_sets()


def test_pins_file_has_the_previous_majors() -> None:
    majors = {
        sdk: {
            pin.split("==")[1].split(".")[0]
            for pins in SETS.values()
            for pin in pins
            if requirement_name(pin) == sdk
        }
        for sdk in ("anthropic", "openai")
    }
    assert {"0", "1"} <= majors["anthropic"] and {"1", "2"} <= majors["openai"], majors


@pytest.mark.parametrize("name", sorted(SETS))
def test_llm_instrumentation_under_previous_sdk_majors(name: str) -> None:
    python = venv_for(name, SETS[name]) / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV) and k != "VIRTUAL_ENV"}
    env["PYTHONPATH"] = str(ROOT)  # this clone's otel_migration, also for the test's own subprocesses
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_llm_instrumentation.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"tests/test_llm_instrumentation.py failed with {' '.join(SETS[name])} (exit {result.returncode})\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
