"""`python -m benchmarks` runs and prints its table (figures are for reading, not asserted)."""
from __future__ import annotations


def test_e2e_section_prints_every_stage_and_the_model_budget(capsys):
    from benchmarks.__main__ import main

    assert main(["--section", "e2e", "--runs", "2", "--no-peers", "--threads", "1"]) == 0
    table = capsys.readouterr().out
    for label in ("ours: All attributes, median", "of which detect (MTCNN)", "of which crop + gender model",
                  "of which crop + all models", "target < 60 ms", "tasks without a model"):
        assert label in table, label
