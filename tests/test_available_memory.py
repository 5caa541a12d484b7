"""The memory a run may use: the host's, or less where its own memory cgroup or one above it is
limited (cgroup v2 and v1, with and without a namespace), measured on fake trees and a real cgroup."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_workflow.estimates.available_memory import available_memory_mb, memory_cgroup_dirs

GB = 1 << 30
MEMINFO = "MemTotal:       33554432 kB\nMemAvailable:   25165824 kB\n"  # 24 GB available


def fake_system(tmp_path, cgroup: str, mounts: list[str]) -> tuple[Path, Path]:
    proc = tmp_path / "proc_self"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("\n".join(mounts) + "\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO)
    return proc, meminfo


def write(folder: Path, **files) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name.replace("_", ".", 1)).write_text(content)


def test_no_cgroup_limit_leaves_the_host_available_memory(tmp_path):
    root = tmp_path / "cg"
    write(root / "user.slice", memory_max="max\n", memory_current=f"{GB}\n")
    proc, meminfo = fake_system(tmp_path, "0::/user.slice\n", [f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw"])
    assert available_memory_mb(proc, meminfo) == 24 * 1024


def test_v2_limit_of_a_parent_applies_and_file_cache_is_not_counted(tmp_path):
    root = tmp_path / "cg"
    job = root / "slurm" / "job_7"
    write(root / "slurm", memory_max=f"{8 * GB}\n", memory_current=f"{5 * GB}\n",
          memory_stat=f"anon {3 * GB}\nactive_file {GB}\ninactive_file {GB}\nfile_mapped {GB // 2}\n")
    write(job, memory_max="max\n", memory_current=f"{2 * GB}\n", memory_stat="anon 5\n")
    proc, meminfo = fake_system(tmp_path, "0::/slurm/job_7\n", [f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw"])
    assert memory_cgroup_dirs(proc) == [(2, job), (2, root / "slurm"), (2, root)]
    # 8 GB - (5 GB used - 2 GB file cache + 0.5 GB of it mapped by running processes)
    assert available_memory_mb(proc, meminfo) == 8 * 1024 - 3584


def test_v1_container_whose_mount_is_its_own_cgroup(tmp_path):
    """Docker without a cgroup namespace: /proc/self/cgroup names /docker/ID, mounted as the root."""
    mount = tmp_path / "memory"
    write(mount, memory_limit_in_bytes=f"{6 * GB}\n", memory_usage_in_bytes=f"{GB}\n",
          memory_stat=f"total_cache {GB}\ntotal_inactive_file {GB // 2}\nmapped_file 7\n")
    proc, meminfo = fake_system(tmp_path, "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n", [
        f"40 30 0:33 /docker/abc {mount} ro - cgroup cgroup rw,memory",
        f"41 30 0:34 /docker/abc {tmp_path / 'pids'} ro - cgroup cgroup rw,pids",
    ])
    assert memory_cgroup_dirs(proc) == [(1, mount)]
    assert available_memory_mb(proc, meminfo) == 6 * 1024 - 512


def test_v1_unlimited_is_no_limit(tmp_path):
    mount = tmp_path / "memory"
    write(mount / "batch", memory_limit_in_bytes="9223372036854771712\n", memory_usage_in_bytes=f"{GB}\n")
    write(mount, memory_limit_in_bytes="9223372036854771712\n", memory_usage_in_bytes=f"{GB}\n")
    proc, meminfo = fake_system(tmp_path, "4:memory:/batch\n", [f"40 30 0:33 / {mount} rw - cgroup cgroup rw,memory"])
    assert available_memory_mb(proc, meminfo) == 24 * 1024


def test_unreadable_or_odd_files_fall_back_to_the_host(tmp_path):
    proc, meminfo = fake_system(tmp_path, "garbage\n4:memory\n", ["not a mount line", "1 2 - cgroup2"])
    assert memory_cgroup_dirs(proc) == [] and available_memory_mb(proc, meminfo) == 24 * 1024
    assert available_memory_mb(tmp_path / "absent", meminfo) == 24 * 1024


def own_memory_cgroup() -> Path | None:
    """A folder where this process may create a child memory cgroup (root, v1 or v2), else None."""
    for version, folder in memory_cgroup_dirs():
        if os.access(folder, os.W_OK):
            if version == 2 and "memory" not in (folder / "cgroup.subtree_control").read_text():
                continue
            return folder
    return None


@pytest.mark.skipif(own_memory_cgroup() is None, reason="needs a writable memory cgroup (root)")
def test_a_real_cgroup_limit_bounds_the_default_budget():
    child = own_memory_cgroup() / f"nnunet_workflow_test_{os.getpid()}"
    try:
        child.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create a memory cgroup here: {error}")
    try:
        limit = child / ("memory.max" if (child / "memory.max").exists() else "memory.limit_in_bytes")
        limit.write_text(str(GB))
        code = "from nnunet_workflow.planning import resources; print(resources.default_budget_mb())"
        inside = ["sh", "-c", f'echo $$ > {child}/cgroup.procs && exec "$@"', "sh", sys.executable, "-c", code]
        done = subprocess.run(inside, capture_output=True, text=True, check=True)
        budget = int(done.stdout)
        assert 0.9 * 1024 * 0.5 < budget <= 0.9 * 1024  # 90% of what the 1 GB cap leaves
    finally:
        child.rmdir()
