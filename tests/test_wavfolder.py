"""The ``wavfolder`` dataset on small WAV files written here (8 and 16 kHz, mono, int16), bad inputs
included; the shared Free Spoken Digit Dataset if it is there."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

import tinyevo as tinyevo_api
from tinyevo.audio.wav import read_wav, resample
from tinyevo.data import load_dataset
from tinyevo.errors import TinyevoError

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT / ".." / "shared" / "datasets" / "fsdd" / "recordings"
SPEAKERS = ("ann", "bob", "cid", "dee", "eve")


def tone(hz: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def write(path: Path, rate: int, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, samples)
    return path


def class_folders(root: Path, rate: int = 8000) -> Path:
    """Two classes (a 500 Hz and a 1500 Hz tone), 2 clips per speaker each, Speech Commands names."""
    for label, hz in (("low", 500), ("high", 1500)):
        for speaker in SPEAKERS:
            for index in range(2):
                write(root / label / f"{speaker}_nohash_{index}.wav", rate, tone(hz, rate, 0.3 + 0.1 * index))
    return root


def test_class_folders_give_mfcc_maps_padded_to_the_clip_length(tmp_path):
    data = load_dataset("wavfolder", data_dir=class_folders(tmp_path / "wav"), clip_ms=500, frame_ms=32,
                        hop_ms=16, n_mels=20, n_mfcc=10)
    # 500 ms at 8 kHz = 4000 samples; frames of 256 every 128: 1 + (4000 - 256) // 128 = 30
    assert data.input_shape == (30, 10, 1)
    assert data.meta["classes"] == ["high", "low"]  # sorted folder names
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 20
    assert data.x_train.dtype == np.float32 and data.scale == 1.0


def test_sequence_layout_puts_the_coefficients_in_the_channels(tmp_path):
    """layout="sequence": (1, frames, coefficients) for the tcn space, frame t's coefficients at
    [0, t, :], the map layout's row t; an unknown layout is a one-line error."""
    options = dict(data_dir=class_folders(tmp_path / "wav"), clip_ms=500, frame_ms=32, hop_ms=16, n_mels=20,
                   n_mfcc=10)
    maps, sequences = load_dataset("wavfolder", **options), load_dataset("wavfolder", layout="sequence", **options)
    assert sequences.input_shape == (1, 30, 10) and sequences.meta["layout"] == "sequence"
    np.testing.assert_array_equal(sequences.x_train[:, 0], maps.x_train[..., 0])
    with pytest.raises(TinyevoError, match="layout must be one of map, sequence"):
        load_dataset("wavfolder", layout="columns", **options)


def test_pcm_clips_are_cut_and_padded_at_the_end(tmp_path):
    root = tmp_path / "wav"
    long = tone(500, 8000, 0.3)
    write(root / "a" / "x.wav", 8000, long)
    write(root / "b" / "y.wav", 8000, long[:1000])
    data = load_dataset("wavfolder", data_dir=root, features="pcm", clip_ms=200, val_size=0, test_size=0)
    x = {int(label): row.reshape(-1) for row, label in zip(data.x_train, data.y_train)}
    assert data.x_train.dtype == np.int16 and data.input_shape == (1, 1600, 1)
    np.testing.assert_array_equal(x[0], long[:1600])
    np.testing.assert_array_equal(x[1], np.concatenate([long[:1000], np.zeros(600, np.int16)]))


def test_speaker_split_holds_out_whole_speakers_and_is_seeded(tmp_path):
    root = class_folders(tmp_path / "wav")
    options = dict(data_dir=root, name_pattern="{speaker}_nohash_{index}", split="speaker", features="pcm",
                   clip_ms=100)
    data = load_dataset("wavfolder", seed=3, **options)
    groups = [set(data.meta[f"{part}_speakers"]) for part in ("train", "val", "test")]
    assert set().union(*groups) == set(SPEAKERS) and sum(map(len, groups)) == len(SPEAKERS)
    assert all(groups) and len(groups[2]) == 1  # round(0.2 * 5) test speakers, one validation
    # every speaker has 4 clips: the parts' sizes follow their speakers
    assert [len(data.y_train), len(data.y_val), len(data.y_test)] == [4 * len(g) for g in groups]
    again = load_dataset("wavfolder", seed=3, **options)
    assert again.meta["test_speakers"] == data.meta["test_speakers"]
    np.testing.assert_array_equal(again.x_test, data.x_test)
    named = load_dataset("wavfolder", test_speakers=["eve"], **options)
    assert named.meta["test_speakers"] == ["eve"] and "eve" not in named.meta["train_speakers"]


def test_filename_labels_with_numeric_class_order(tmp_path):
    root = tmp_path / "digits"
    for digit in (0, 2, 10):
        for speaker in SPEAKERS[:3]:
            write(root / f"{digit}_{speaker}_0.wav", 8000, tone(300 + 100 * digit, 8000, 0.2))
    data = load_dataset("wavfolder", data_dir=root, labels="filename", split="speaker", features="pcm",
                        clip_ms=100, val_size=0.5)
    assert data.meta["classes"] == ["0", "2", "10"]  # numbers, not "10" < "2"
    assert len(data.meta["test_speakers"]) == 1 and len(data.meta["val_speakers"]) == 1
    assert sorted(set(data.y_test.tolist())) == [0, 1, 2]


def test_a_16_khz_file_is_resampled_to_the_first_files_8_khz(tmp_path):
    """A 1 kHz tone at 16 kHz resampled to 8 kHz is the same 1 kHz tone sampled at 8 kHz (away from
    the ends, where the polyphase filter sees zeros): max error a few LSB of 16383 amplitude."""
    root = tmp_path / "wav"
    write(root / "a" / "0.wav", 8000, tone(1000, 8000, 0.25))
    write(root / "b" / "1.wav", 16000, tone(1000, 16000, 0.25))
    data = load_dataset("wavfolder", data_dir=root, features="pcm", clip_ms=250, val_size=0, test_size=0)
    assert data.meta["frontend"]["sample_rate"] == 8000 and data.meta["file_sample_rates"] == [8000, 16000]
    resampled = data.x_train[list(data.y_train).index(1)].reshape(-1).astype(float)
    expected = tone(1000, 8000, 0.25).astype(float)
    assert resampled.shape == (2000,)
    assert np.max(np.abs(resampled[100:-100] - expected[100:-100])) < 0.01 * 16383


def test_resample_keeps_a_tones_frequency():
    """Spectrum peak of a 440 Hz tone after 16 kHz -> 8 kHz lands on 440 Hz (bin spacing 1 Hz)."""
    out = resample(tone(440, 16000, 1.0), 16000, 8000)
    assert len(out) == 8000
    assert np.argmax(np.abs(np.fft.rfft(out))) == 440


def wav_24_bit(path: Path, rate: int = 8000) -> Path:
    """A minimal RIFF/WAVE file: PCM, mono, 24 bits per sample, 4 samples."""
    data = b"\x00\x00\x01" * 4
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 3, 3, 24)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize("bad, message", [
    ("text", "is not a WAV file"), ("stereo", "2 channels"), ("24bit", "16-bit PCM"),
    ("float", "32-bit float"), ("empty_class", "has no WAV files"), ("one_class", "at least two"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, bad, message):
    root = tmp_path / "wav"
    write(root / "a" / "0.wav", 8000, tone(500, 8000, 0.1))
    if bad != "one_class":
        write(root / "b" / "0.wav", 8000, tone(900, 8000, 0.1))
    target = root / "b" / "1.wav"
    if bad == "text":
        target.write_text("not audio")
    elif bad == "stereo":
        write(target, 8000, np.zeros((800, 2), np.int16))
    elif bad == "24bit":
        wav_24_bit(target)
    elif bad == "float":
        write(target, 8000, np.zeros(800, np.float32))
    elif bad == "empty_class":
        (root / "c").mkdir()
    with pytest.raises(TinyevoError, match=message) as error:
        load_dataset("wavfolder", data_dir=root, val_size=0, test_size=0)
    assert "\n" not in str(error.value)


def test_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    for options, message in [
        (dict(data_dir=tmp_path / "empty"), "no class folders and no WAV files"),
        (dict(data_dir=tmp_path / "empty", labels="folder"), "has no class folders; put"),
        (dict(data_dir=tmp_path / "missing"), "does not exist"),
        (dict(), "needs the folder"),
        (dict(data_dir=tmp_path / "empty", features="spectrogram"), "features must be one of"),
    ]:
        with pytest.raises(TinyevoError, match=message):
            load_dataset("wavfolder", **options)
    write(tmp_path / "flat" / "hello.wav", 8000, tone(500, 8000, 0.1))
    with pytest.raises(TinyevoError, match="does not match name_pattern"):
        load_dataset("wavfolder", data_dir=tmp_path / "flat")  # no class folders: labels from names
    root = class_folders(tmp_path / "wav")
    with pytest.raises(TinyevoError, match="needs each clip's speaker"):
        load_dataset("wavfolder", data_dir=root, split="speaker")
    with pytest.raises(TinyevoError, match="test_speakers zed not found"):
        load_dataset("wavfolder", data_dir=root, name_pattern="{speaker}_nohash_{index}", test_speakers=["zed"])


def test_read_wav_returns_the_written_samples(tmp_path):
    samples = tone(700, 16000, 0.05)
    rate, read = read_wav(write(tmp_path / "a.wav", 16000, samples))
    assert rate == 16000
    np.testing.assert_array_equal(read, samples)


@pytest.mark.skipif(not FSDD.is_dir(), reason="the shared FSDD recordings are not there")
def test_fsdd_speaker_split():
    data = load_dataset("wavfolder", data_dir=FSDD, test_speakers=["theo"],  # labels from the names
                        features="pcm", classes=["0", "1"], clip_ms=100)
    # FSDD: 6 speakers x 50 clips per digit; theo's 100 clips of digits 0 and 1 are the test split
    assert len(data.y_test) == 100 and data.meta["test_speakers"] == ["theo"]
    assert len(data.y_train) + len(data.y_val) == 500 and data.meta["frontend"]["sample_rate"] == 8000


# --- search and export ----------------------------------------------------------------------------
CONFIG = """
space = "chain"
dataset = "wavfolder"
strategy = "random"
objectives = ["accuracy"]
budget = 1
final_models = 1
final_epochs = 1

[dataset_options]
name_pattern = "{speaker}_nohash_{index}"
split = "speaker"
clip_ms = 400
frame_ms = 32
hop_ms = 32
n_mels = 20
n_mfcc = 8

[space_options]
filters = [4]
units = [8]

[fidelity]
epochs = 1
"""


def tinyevo(tmp_path, *args) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tinyevo.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=environment)


@pytest.mark.slow  # about 25 CPU seconds: a search of one model and two CLI processes (torch imports)
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None, reason="no host C compiler")
def test_search_on_a_wav_folder_then_export_c_with_its_front_end(tmp_path):
    """``tinyevo.search`` reads the clips as the CLI does; ``tinyevo export --format c`` of the run
    writes the front-end that made its features (400 ms at 8 kHz, 32 ms frames: 12 x 8 MFCC)."""
    root = class_folders(tmp_path / "wav")
    (tmp_path / "c.toml").write_text(CONFIG)
    result = tinyevo_api.search(tmp_path / "run", config=tmp_path / "c.toml", data_dir=str(root),
                                progress=False)
    assert result.best.test_accuracy is not None
    done = tinyevo(tmp_path, "export", str(tmp_path / "run"), "--format", "c", "--out", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "c" / "metadata.json").read_text())
    assert meta["input"]["shape"] == [1, 12, 8, 1] and meta["frontend"]["output_shape"] == [12, 8, 1]
    assert (tmp_path / "c" / "tinyevo_frontend.c").is_file()

    (root / "low" / "notes.txt").write_text("not audio")
    bad = tinyevo(tmp_path, "search", "--dataset", "wavfolder", "--data-dir", str(root), "--out",
                  str(tmp_path / "bad"))
    assert bad.returncode == 2 and "notes.txt is not a WAV file" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
