"""Sample the worker's hot path with py-spy while it drains a backlog, and
summarise the collapsed stacks: top functions by self time and by inclusive
time (project code only for the inclusive list)."""

from __future__ import annotations

import asyncio
import collections
import shutil
import subprocess
import sys
from pathlib import Path

PY_SPY = Path(sys.executable).with_name("py-spy")


async def record(pid: int, seconds: float, out: Path, rate: int = 50) -> Path | None:
    """py-spy record -f raw; returns the file (None when py-spy is missing or fails)."""
    exe = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate),
        "-f", "raw", "-o", str(out), "--nonblocking",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        out.with_suffix(".err").write_bytes(err)
        return None
    return out


def _frame(name: str) -> str:
    # "function (path/file.py:line)" -> "function (file.py)"
    fn, _, rest = name.partition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{fn} ({path})"


def summarise(raw: Path, top: int = 15) -> dict:
    self_counts: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        self_counts[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {"samples": 0}
    own = ("engine/", "agents/", "app/", "models/")
    return {
        "samples": total,
        "self_top": [(f, round(100 * n / total, 1)) for f, n in self_counts.most_common(top)],
        "inclusive_project_top": [
            (f, round(100 * n / total, 1)) for f, n in incl.most_common()
            if any(o in f for o in own) and "app/cli.py" not in f][:top],
    }
