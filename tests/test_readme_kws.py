"""The README's keyword-spotting example (front-end genes, then ``export --format c``), run as
written on a few generated clips named as the Free Spoken Digit Dataset names its files."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from tinyevo.cli import main
from test_wavfolder import tone, write

torch.set_num_threads(1)
README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### Keyword spotting end to end, front-end searched"
FSDD = "../shared/datasets/fsdd/recordings"


def readme_blocks() -> tuple[str, list[str]]:
    """The section's TOML file and its shell commands."""
    text = README.read_text().split(SECTION, 1)[1]
    toml = text.split("```toml\n", 1)[1].split("```", 1)[0]
    commands = text.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    return toml, commands


def fsdd_like(root: Path) -> Path:
    """Digits 0 and 1 (a 500 Hz and a 1500 Hz tone), 1 s at 8 kHz, 2 clips from each of 4 speakers,
    ``theo`` among them (the README's test speaker)."""
    for digit, hz in ((0, 500), (1, 1500)):
        for speaker in ("theo", "ann", "bob", "cid"):
            for index in range(2):
                write(root / f"{digit}_{speaker}_{index}.wav", 8000, tone(hz * (1 + 0.05 * index), 8000, 1.0))
    return root


@pytest.mark.slow  # about 25 s: ten short trainings, two final ones and a C export, in-process
def test_the_readme_keyword_spotting_example_runs_as_written(tmp_path, monkeypatch):
    toml, commands = readme_blocks()
    assert [shlex.split(c, comments=True)[:2] for c in commands] == [
        ["tinyevo", "search"], ["tinyevo", "show"], ["tinyevo", "export"]]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kws_fe.toml").write_text(toml)
    data = fsdd_like(tmp_path / "recordings")
    for command in commands:
        argv = shlex.split(command.replace(FSDD, str(data)), comments=True)
        assert main(argv[1:]) == 0, command
    meta = json.loads((tmp_path / "kws_fe_c" / "metadata.json").read_text())
    results = json.loads((tmp_path / "runs" / "kws_fe" / "results.json").read_text())
    best = results["best"]
    arch = json.loads((tmp_path / "runs" / "kws_fe" / Path(best["weights"]).with_suffix(".json")).read_text())
    assert meta["frontend"]["settings"] == arch["frontend"]["settings"]
    assert meta["input"]["shape"][1:] == arch["input_shape"]
    assert best["peak_sram_bytes"] <= 48 * 1024 and best["frontend_ram_bytes"] >= 0
