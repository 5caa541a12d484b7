"""The executor a run asked for, read while parsing: local runs get budgets, cluster runs do not."""

from nnunet_workflow.planning.run_location import requested_executor, runs_locally


def test_command_line_executor():
    assert requested_executor(["snakemake", "--executor", "slurm", "--jobs", "5"], environ={}) == "slurm"
    assert requested_executor(["snakemake", "--executor=slurm"], environ={}) == "slurm"
    assert requested_executor(["snakemake", "-e", "slurm"], environ={}) == "slurm"
    assert runs_locally(["snakemake", "--cores", "4"], environ={})
    assert runs_locally(["snakemake", "-j", "4"], environ={})  # -j is an alias of --cores locally
    assert runs_locally(["snakemake", "--executor", "local", "--cores", "2"], environ={})


def test_profile_executor(tmp_path):
    profile = tmp_path / "profiles" / "site"
    profile.mkdir(parents=True)
    (profile / "config.yaml").write_text("executor: slurm\njobs: 100\n")
    (tmp_path / "profiles" / "plain").mkdir()
    (tmp_path / "profiles" / "plain" / "config.yaml").write_text("keep-going: true\n")
    assert not runs_locally(["snakemake", "--profile", "profiles/site"], environ={}, cwd=tmp_path)
    assert not runs_locally(["snakemake", "--profile", str(profile)], environ={}, cwd="/")
    assert runs_locally(["snakemake", "--profile", "profiles/plain"], environ={}, cwd=tmp_path)
    assert not runs_locally(["snakemake"], environ={"SNAKEMAKE_PROFILE": str(profile)}, cwd=tmp_path)
    # the command line wins over the profile
    assert runs_locally(["snakemake", "--profile", str(profile), "--executor", "local"], environ={})


def test_the_repository_profiles():
    from nnunet_workflow.dev.runner import REPO

    assert not runs_locally(["snakemake", "--profile", "profiles/slurm"], environ={}, cwd=REPO)
    assert runs_locally(["snakemake", "--cores", "2"], environ={}, cwd=REPO)  # profiles/default: no executor
