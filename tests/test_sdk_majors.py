"""The LLM instrumentation against the previous majors of the SDKs, still in wide use.

tests/test_llm_instrumentation.py runs in .venv with the current majors (constraints.txt). Here it
runs again, unchanged, in one venv per SDK set of tests/sdk-majors-constraints.txt: that file has a
section per set (a ``# [name]`` line, then its pins), which pins the SDKs and every package they bring
in that constraints.txt does not pin, or pins to a version they cannot use. A venv is built once per
machine under ``${OTEL_MIGRATION_CACHE:-$HOME/.cache/otel-migration}/sdk-majors/<name>/<hash>``, the
hash of what it is built from (the pins file, constraints.txt, the requirements, the interpreter):
anew only when one of them changes (about a minute a set). It holds the project's dependencies, not
the project: the run puts the repository first on PYTHONPATH, so one venv serves every clone.

A venv installs the dependencies of pyproject.toml (``dependencies`` and the ``dev`` extra, whose
ranges the pinned SDKs must fall in) under constraints.txt less the lines of the packages that the
section pins, plus the section's pins. To add a set or move one: edit its section, run this file
(the build fails naming any installed package that is pinned nowhere), and copy the missing lines
from ``<venv>/bin/python -m pip freeze`` into the section.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "tests" / "sdk-majors-constraints.txt"
PROJECT_CONSTRAINTS = ROOT / "constraints.txt"
CACHE = Path(os.environ.get("OTEL_MIGRATION_CACHE") or Path.home() / ".cache" / "otel-migration")
VENVS = CACHE / "sdk-majors"
#: Variables that would configure the SDKs, our package or the inner pytest from the outside.
FOREIGN_ENV = ("OTEL_", "ANTHROPIC_", "OPENAI_", "PYTEST_")

_SECTION = re.compile(r"#\s*\[(?P<name>[\w.-]+)\](\s.*)?$")


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


def run(command: list[str], *, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Not in the repository: its otel_migration.egg-info would look installed to pip freeze.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, cwd=VENVS, env=env
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result


def inputs_digest() -> str:
    """What a venv is built from: the pins, constraints.txt, the requirements and the interpreter."""
    digest = hashlib.sha256()
    for part in (
        PINS.read_bytes(),
        PROJECT_CONSTRAINTS.read_bytes(),
        "\n".join(project_requirements()).encode(),
        f"{sys.version}\n{getattr(sys, '_base_executable', sys.executable)}".encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def build(venv: Path, name: str, pins: list[str]) -> None:
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run([sys.executable, "-m", "venv", str(venv)], timeout=300, env=env)
    constraints = venv / "sdk-majors-constraints.txt"
    constraints.write_text(constraints_for(pins))
    run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *project_requirements()],
        timeout=3600,
        env=env,
    )
    run([str(python), "-m", "pip", "check"], timeout=300, env=env)
    frozen = run([str(python), "-m", "pip", "freeze"], timeout=300, env=env).stdout
    pinned = {requirement_name(line) for line in requirement_lines(constraints.read_text())}
    unpinned = [line for line in requirement_lines(frozen) if requirement_name(line) not in pinned]
    assert not unpinned, f"pin these under [{name}] in {PINS.relative_to(ROOT)}: {unpinned}"
    print(f"built {venv} in {time.monotonic() - started:.0f} s")


@contextlib.contextmanager
def venv_for(name: str, pins: list[str]) -> Iterator[Path]:
    """The venv of one SDK set, built if need be, kept from being removed while in use.

    Each venv is ``sdk-majors/<name>/<digest of its inputs>``, so runs from clones that differ in
    them never share one. A run holds its venv's lock shared while it uses the venv, exclusively
    while it builds it; venvs of the same set that no run holds are removed.
    """
    digest = inputs_digest()
    home = VENVS / name
    venv = home / digest[:16]
    stamp = venv / ".stamp"
    home.mkdir(parents=True, exist_ok=True)
    lock_path = home / f"{digest[:16]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ((venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text() == digest):
            build(venv, name, pins)
            stamp.write_text(digest)
        fcntl.flock(lock, fcntl.LOCK_SH)
        for other in home.glob("*.lock"):
            if other == lock_path:
                continue
            with open(other, "w") as stale:
                try:
                    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use by another run
                shutil.rmtree(other.with_suffix(""), ignore_errors=True)
        yield venv


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
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV) and k != "VIRTUAL_ENV"}
    env["PYTHONPATH"] = str(ROOT)  # this clone's otel_migration, also for the test's own subprocesses
    with venv_for(name, SETS[name]) as venv:
        result = subprocess.run(
            [
                *(str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"),
                "tests/test_llm_instrumentation.py",
                "tests/test_tools_agents.py",  # tool calls read from each major's response types
            ],
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
