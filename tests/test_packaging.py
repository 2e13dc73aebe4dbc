"""Packaging: the licence ships in the wheel, a source tree imports, --version stays light."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDK_MODULES = ("alibabacloud", "Tea", "darabonba", "aiohttp", "requests")


def _python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOBESMS_", "ALIBABA_"))}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, check=False)


def test_license_is_the_apache_text_and_ships_in_the_wheel(tmp_path: Path) -> None:
    """LICENSE holds the Apache-2.0 text that pyproject declares, and the wheel carries it."""
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    result = _python("-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT))
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("globesms-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [licence] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(licence).decode() == text
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert b"License-Expression: Apache-2.0" in metadata
    assert "globesms/__main__.py" in names


def test_source_tree_without_metadata_imports(tmp_path: Path) -> None:
    """`import globesms` from a source tree that is not installed has a __version__."""
    shutil.copytree(ROOT / "src" / "globesms", tmp_path / "globesms",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = "import globesms; print(globesms.__version__)"
    result = _python("-S", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0+unknown"


def test_version_does_not_import_the_sdk() -> None:
    """`globesms --version` prints the version without importing the Alibaba SDK."""
    code = (
        "import json, sys\n"
        "from globesms._cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as exit:\n    code = exit.code\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({SDK_MODULES!r}))\n"
        "print(json.dumps({'code': code, 'loaded': loaded}))\n"
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    version_line, report = result.stdout.splitlines()
    assert version_line.startswith("globesms ") and version_line != "globesms 0+unknown"
    assert json.loads(report) == {"code": 0, "loaded": []}


def test_python_m_globesms_runs_the_command(tmp_path: Path) -> None:
    """`python -m globesms` is the globesms command."""
    result = _python("-m", "globesms", "send", "--sandbox", "--to", "+6591234567",
                     "--message", "hi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["to"] == "+65****4567"
    bare = _python("-m", "globesms", cwd=tmp_path)
    assert bare.returncode == 2
    assert "usage: globesms" in bare.stderr and "send" in bare.stderr
