"""cgroup v2 caps: which cap is in force and why; the session cgroup's files (a fake tree: the kernel's side of a
real cgroup is exercised only where this machine delegates one, see test_this_machine_says_which_cap_holds)."""

from __future__ import annotations

from pathlib import Path

from mimo.rewards.cgroup import HEADROOM_MB, SessionCgroup, find_parent
from mimo.rewards.sandbox import sandbox_status


def fake_tree(root: Path, controllers: str) -> Path:
    own = root / "ours"
    own.mkdir()
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("\n")
    return own


def test_find_parent_needs_memory_and_pids(tmp_path):
    own = fake_tree(tmp_path, "cpu memory pids")
    parent, line = find_parent(tmp_path, "/ours")
    assert parent == own and line.startswith("cgroup v2 per sandbox")
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"  # handed to the children
    hybrid = tmp_path / "hybrid"
    hybrid.mkdir()
    fake_tree(hybrid, "hugetlb")
    parent, line = find_parent(hybrid, "/ours")
    assert parent is None and "lacks the memory and pids controllers" in line and line.startswith("RLIMIT_AS")


def test_session_cgroup_writes_caps_and_reads_oom_kills(tmp_path):
    cg = SessionCgroup(tmp_path)
    cg.set_limits(512, 8)
    assert int((cg.path / "memory.max").read_text()) == (512 + HEADROOM_MB) << 20
    assert (cg.path / "pids.max").read_text() == "16"
    assert cg.oom_kills() == 0
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert cg.oom_kills() == 2
    for name in ("memory.max", "pids.max", "memory.events"):
        (cg.path / name).unlink()
    cg.remove()
    assert not cg.path.exists()


def test_this_machine_says_which_cap_holds():
    parent, line = find_parent()
    status = sandbox_status()
    assert ("memory: " + line) in status or "no sandbox" in status
    print(status)
