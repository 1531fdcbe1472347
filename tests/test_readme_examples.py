"""Every `sh` block of the README runs as written against `soa up` of the shop."""

import os
import re
import subprocess
import sys
from pathlib import Path

from test_up_scale import Up

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)


def runnable():
    """The blocks of `soa` commands (the set-up block of make targets is the README's own)."""
    return [b for b in BLOCKS if all(line.startswith(("soa ", " ")) or not line.strip()
                                     for line in b.splitlines())]


def test_there_are_examples_and_the_setup_block_is_left_out():
    assert len(runnable()) >= 3
    assert any("make demo" in b for b in BLOCKS) and not any("make" in b for b in runnable())


def test_every_shell_example_in_the_readme_runs_against_soa_up(tmp_path):
    shop = Up(tmp_path, "--etcd-port", "0")
    try:
        shop.wait_table(10)
        env = dict(os.environ, SOA_CONFIG=str(shop.config),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        for block in runnable():
            done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, f"{block}\n---\n{done.stdout}{done.stderr}"
            assert "Traceback" not in done.stderr
    finally:
        shop.stop()
