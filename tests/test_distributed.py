"""Training under torchrun: 2 CPU processes on gloo, one model folder written by rank 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_finetune_data import make_image_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_two_processes_on_gloo_write_one_model_folder(tiny_manifest_path, tmp_path):
    data = make_image_folder(tmp_path / "data")
    models = tmp_path / "models"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "finetune", "--task", "field", "--data", str(data), "--manifest", str(tiny_manifest_path),
               "--output", str(models / "field"), "--state-dir", str(tmp_path / "state"),
               "--cache-dir", str(tmp_path / "cache"), "--model", "test_vit", "--no-pretrained",
               "--input-size", "32", "--epochs", "2", "--batch-size", "8", "--workers", "0",
               "--no-detect-faces", "--no-progress"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    assert sorted(p.name for p in models.iterdir()) == ["field"]  # one folder, from rank 0 only
    folder = models / "field"
    metrics = json.loads((folder / "metrics.json").read_text())
    # rank 0 measured the whole test split itself, not one shard of it
    assert metrics["test"]["n"] == metrics["data"]["sizes"]["test"]
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    assert done.stdout.count("[test] accuracy") == 1  # only rank 0 reports
    assert "[epoch 2]" in done.stdout
