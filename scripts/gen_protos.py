"""Regenerate the `improto` package from protos/im.proto with betterproto.

`python scripts/gen_protos.py` rewrites improto/; `--check` only compares and
exits 1 when the committed code is stale. Run it from the repository root's venv.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "improto"


def generate(out: Path) -> Path:
    """Run protoc with the betterproto plugin into `out`; return the generated package dir."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_betterproto_out={out}",
            str(ROOT / "protos" / "im.proto"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"protoc failed ({done.returncode}):\n{done.stderr}")
    return out / PACKAGE


def stale_files(generated: Path, committed: Path) -> list[str]:
    """Names of files that differ between two package directories (or exist in one only)."""
    cmp = filecmp.dircmp(generated, committed, ignore=["__pycache__"])
    return sorted(cmp.left_only + cmp.right_only + cmp.diff_files)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        stale = stale_files(generated, ROOT / PACKAGE)
        if "--check" in argv:
            if stale:
                print(f"{PACKAGE}/ is stale ({', '.join(stale)}): run `tox -e protos`")
                return 1
            print(f"{PACKAGE}/ is current")
            return 0
        shutil.rmtree(ROOT / PACKAGE, ignore_errors=True)
        shutil.copytree(generated, ROOT / PACKAGE)
        print(f"regenerated {PACKAGE}/ from protos/im.proto")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
