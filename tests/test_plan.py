"""Batches: largest inputs first, bounded size, deterministic."""

from nnunet_workflow.cases import Case
from nnunet_workflow.plan import plan_batches


def test_batches_are_largest_first_and_bounded(tmp_path):
    cases = {}
    for name, size in [("a", 10), ("b", 30), ("c", 20), ("d", 30), ("e", 5)]:
        path = tmp_path / f"{name}_0000.nii.gz"
        path.write_bytes(b"x" * size)
        cases[name] = Case(name, {0: str(path)})
    batches = plan_batches(cases, batch_size=2)
    assert batches == {"batch_0000": ["b", "d"], "batch_0001": ["c", "a"], "batch_0002": ["e"]}
    assert plan_batches(dict(reversed(list(cases.items()))), batch_size=2) == batches
