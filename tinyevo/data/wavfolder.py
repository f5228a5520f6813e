"""Spoken words as WAV files: one folder per class (the Speech Commands layout), or one folder of
files whose names carry the label (the Free Spoken Digit Dataset, ``{digit}_{speaker}_{index}.wav``).

    load_dataset("wavfolder", data_dir="speech_commands", classes=["yes", "no"],
                 name_pattern="{speaker}_nohash_{index}", split="speaker")
    load_dataset("wavfolder", data_dir="../shared/datasets/fsdd/recordings", labels="filename",
                 split="speaker", test_speakers=["theo"])

Files are mono 16-bit PCM WAV (``tinyevo.audio.wav``); every clip is resampled to ``sample_rate``
(default: the first file's) and padded with zeros or cut at the end to ``clip_ms``. Names starting
with a dot are skipped, and so are folders starting with ``_`` (Speech Commands'
``_background_noise_``); files beside the class folders are not read.

Options:
- ``labels``: ``"folder"`` (the class is the folder name) or ``"filename"`` (the ``{label}`` field
  of ``name_pattern``; the files lie in ``data_dir`` itself). Default: ``"folder"`` when
  ``data_dir`` holds class folders, else ``"filename"`` (so ``--data-dir`` of FSDD's recordings
  needs no option).
- ``name_pattern``: the file name without ``.wav`` with fields in braces: ``{label}``, ``{speaker}``
  and any others (ignored), separated by literal text, e.g. ``{speaker}_nohash_{index}``. Default
  ``{label}_{speaker}_{index}`` for filename labels, none for folder labels (no speakers known).
- ``classes``: the labels to read, in this order (default: all, sorted; numerically when all are
  whole numbers). Label 0 is the first; ``meta["classes"]`` lists them.
- ``split``: ``"random"`` (default: seeded shares of the clips) or ``"speaker"`` (whole speakers held
  out: a speaker in train is never in validation or test; needs ``{speaker}`` in ``name_pattern``).
  ``test_speakers`` names the test speakers (and implies ``split="speaker"``); otherwise they are a
  seeded ``test_size`` share of the speakers, the validation speakers a ``val_size`` share of the
  rest (at least one each). ``meta`` records which speakers went where.
- ``features``: ``"mfcc"`` (default), ``"logmel"`` (``tinyevo.audio.FrontEnd``; float32 maps
  (N, frames, coefficients, 1), scale 1) or ``"pcm"`` (the clips, int16 (N, 1, samples, 1), scale
  1/32768: for a search whose genes include the front-end); ``frame_ms``, ``hop_ms``, ``n_mels``,
  ``n_mfcc`` set the front-end (``FrontEnd``'s defaults otherwise); ``meta["frontend"]`` holds its
  settings (also for ``pcm``: the rate and clip length), which ``tinyevo export --format c`` reads.
- ``layout``: ``"map"`` (default: features as (frames, coefficients, 1), the ``kws`` space's 2-D
  map) or ``"sequence"`` ((1, frames, coefficients): a sequence of frames with the coefficients as
  channels, the ``tcn`` space's 1-D layout). Both hold a clip's features in the same order in
  memory (frame by frame), so the C front-end's output feeds either. PCM is (1, samples, 1) in both.
- ``limit_per_class``: only the first N files (sorted by name) of each class.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyevo.audio.frontend import FrontEnd, PCM_SCALE
from tinyevo.audio.wav import fit_length, read_wav, resample
from tinyevo.data.base import (DATASETS, TEST_SIZE, VAL_SIZE, Dataset, folder_entries, labels as as_labels,
                               with_seeded_test)
from tinyevo.errors import TinyevoError

LABEL_SOURCES = ("folder", "filename")
SPLITS = ("random", "speaker")
FEATURES = ("mfcc", "logmel", "pcm")
LAYOUTS = ("map", "sequence")
FILENAME_PATTERN = "{label}_{speaker}_{index}"
FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Clips:
    """The WAV files to read, with their label names and speakers (None when unknown)."""

    files: tuple[Path, ...]
    labels: tuple[str, ...]
    speakers: tuple[str | None, ...]


def pattern_regex(pattern: str) -> re.Pattern:
    """A regex of ``name_pattern``: each ``{field}`` a named group of one or more characters."""
    parts, last = [], 0
    for match in FIELD.finditer(pattern):
        parts += [re.escape(pattern[last:match.start()]), f"(?P<{match.group(1)}>.+?)"]
        last = match.end()
    try:
        return re.compile("".join(parts) + re.escape(pattern[last:]) + "$")
    except re.error:
        raise TinyevoError(f"name_pattern {pattern!r} names a field twice; name each field once, "
                           f"e.g. {FILENAME_PATTERN}") from None


def name_fields(path: Path, regex: re.Pattern, pattern: str) -> dict[str, str]:
    match = regex.match(path.stem)
    if match is None:
        raise TinyevoError(f"{path.name} does not match name_pattern {pattern!r}; rename it, remove it, "
                           f"or give the name_pattern its files follow")
    return match.groupdict()


def visible(folder: Path, folders: bool) -> list[Path]:
    """Sorted sub-folders (not starting with ``_``) or files of ``folder``, hidden ones left out."""
    entries = folder_entries(folder)
    if folders:
        return [folder / e.name for e in entries if e.is_dir() and not e.name.startswith("_")]
    return [folder / e.name for e in entries if not e.is_dir()]


def list_clips(folder: Path, label_source: str, pattern: str | None) -> Clips:
    """Every clip of the folder with its label and speaker, or a one-line error for an empty layout."""
    regex = pattern_regex(pattern) if pattern else None
    if label_source == "folder":
        class_folders = visible(folder, folders=True)
        if not class_folders:
            raise TinyevoError(f"WAV folder {str(folder)!r} has no class folders; put the clips of each "
                               f"class in a folder of its own (e.g. {folder}/yes/0001.wav), or pass "
                               f"labels=\"filename\" for files named {FILENAME_PATTERN}.wav")
        pairs = []
        for class_folder in class_folders:
            files = visible(class_folder, folders=False)
            if not files:
                raise TinyevoError(f"class folder {str(class_folder)!r} has no WAV files; add some or "
                                   f"remove the folder")
            pairs += [(path, class_folder.name) for path in files]
    else:
        files = visible(folder, folders=False)
        if not files:
            raise TinyevoError(f"WAV folder {str(folder)!r} has no class folders and no WAV files; put "
                               f"the clips of each class in a folder of its own (e.g. {folder}/yes/0001.wav), "
                               f"or the clips themselves, named like {pattern}.wav")
        pairs = [(path, name_fields(path, regex, pattern)["label"]) for path in files]
    speakers = [name_fields(path, regex, pattern).get("speaker") if regex else None for path, _ in pairs]
    return Clips(tuple(p for p, _ in pairs), tuple(label for _, label in pairs), tuple(speakers))


def class_order(found: tuple[str, ...], classes: list | None, folder: Path) -> list[str]:
    """The classes to read: ``classes`` (each must exist) or every label, sorted."""
    names = sorted(set(found), key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))
    if classes is not None:
        wanted = [str(c) for c in classes]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise TinyevoError(f"WAV folder {str(folder)!r} has no class(es) {', '.join(missing)}; "
                               f"its classes are: {', '.join(names)}")
        names = wanted
    if len(names) < 2:
        raise TinyevoError(f"WAV folder {str(folder)!r} has one class ({names[0]!r}); a classifier "
                           f"needs at least two")
    return names


def select(clips: Clips, names: list[str], limit_per_class: int | None) -> tuple[list[int], np.ndarray]:
    """Indices of the clips of ``names`` (the first ``limit_per_class`` of each) and their labels."""
    rows, labels = [], []
    for label, name in enumerate(names):
        mine = [i for i, value in enumerate(clips.labels) if value == name]
        mine = mine[:limit_per_class] if limit_per_class is not None else mine
        rows += mine
        labels += [label] * len(mine)
    return rows, np.asarray(labels, np.int64)


def read_clips(files: list[Path], sample_rate: int | None, clip_ms: float) -> tuple[np.ndarray, int, list[int]]:
    """(N, clip samples) int16 at one rate (``sample_rate``, default the first file's), the rate, and
    the rates the files had."""
    clips, rates = [], []
    for path in files:
        rate, samples = read_wav(path)
        rates.append(rate)
        target = sample_rate or rates[0]
        clips.append(fit_length(resample(samples, rate, target), int(round(clip_ms * target / 1000))))
    return np.stack(clips), int(sample_rate or rates[0]), sorted(set(rates))


def speaker_split(speakers: np.ndarray, seed: int, val_size, test_size, test_speakers) -> dict[str, list[str]]:
    """Which speakers are test, validation and training (seeded; ``test_speakers`` when given)."""
    if any(s is None for s in speakers):
        raise TinyevoError("split=\"speaker\" needs each clip's speaker: give a name_pattern with a "
                           "{speaker} field, e.g. {label}_{speaker}_{index} or {speaker}_nohash_{index}")
    known = sorted(set(speakers))
    rng = np.random.default_rng(seed)
    if test_speakers is not None:
        test = [str(s) for s in test_speakers]
        missing = [s for s in test if s not in known]
        if missing:
            raise TinyevoError(f"test_speakers {', '.join(missing)} not found; the speakers are: "
                               f"{', '.join(known)}")
    else:
        test = [known[i] for i in rng.permutation(len(known))[:max(1, int(round(test_size * len(known))))]]
    rest = [s for s in known if s not in test]
    count = max(1, int(round(val_size * len(rest)))) if val_size else 0
    if len(rest) - count < 1:
        raise TinyevoError(f"split=\"speaker\" needs a speaker for training after {len(test)} test and "
                           f"{count} validation speaker(s), but there are {len(known)}; "
                           f"use split=\"random\" or data with more speakers")
    val = [rest[i] for i in rng.permutation(len(rest))[:count]]
    return {"test": sorted(test), "val": sorted(val), "train": sorted(s for s in rest if s not in val)}


def checked_choice(value, choices, what: str) -> str:
    if value not in choices:
        raise TinyevoError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


@DATASETS.register("wavfolder")
def load_wavfolder(data_dir=None, seed: int = 0, labels: str | None = None, name_pattern: str | None = None,
                   classes: list | None = None, split: str = "random", test_speakers: list | None = None,
                   features: str = "mfcc", sample_rate: int | None = None, clip_ms: float = 1000,
                   frame_ms: float = 40, hop_ms: float = 20, n_mels: int = 40, n_mfcc: int = 10,
                   val_size: float | int = VAL_SIZE, test_size: float | int = TEST_SIZE,
                   limit_per_class: int | None = None, layout: str = "map", name: str | None = None) -> Dataset:
    """The clips under ``data_dir`` as features (or PCM), split at random or by speaker."""
    if data_dir is None:
        raise TinyevoError("dataset 'wavfolder' needs the folder of WAV files: pass --data-dir DIR "
                           "(DIR/<class>/*.wav, or with labels=\"filename\" DIR/<label>_<speaker>_<n>.wav)")
    checked_choice(split, SPLITS, "split")
    checked_choice(features, FEATURES, "features")
    checked_choice(layout, LAYOUTS, "layout")
    if limit_per_class is not None and (isinstance(limit_per_class, bool) or not isinstance(limit_per_class, int)
                                        or limit_per_class < 1):
        raise TinyevoError(f"limit_per_class must be a positive number of files, got {limit_per_class!r}")
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise TinyevoError(f"data dir {str(folder)!r} for dataset 'wavfolder' {problem}; give the folder "
                           f"of WAV files")
    labels = labels or ("folder" if visible(folder, folders=True) else "filename")
    checked_choice(labels, LABEL_SOURCES, "labels")
    pattern = name_pattern or (FILENAME_PATTERN if labels == "filename" else None)
    if labels == "filename" and "{label}" not in pattern:
        raise TinyevoError(f"labels=\"filename\" needs a {{label}} field in name_pattern, got {pattern!r}")
    clips = list_clips(folder, labels, pattern)
    names = class_order(clips.labels, classes, folder)
    rows, y = select(clips, names, limit_per_class)
    pcm, rate, rates = read_clips([clips.files[i] for i in rows], sample_rate, clip_ms)
    frontend = FrontEnd(kind="mfcc" if features == "pcm" else features, sample_rate=rate, clip_ms=clip_ms,
                        frame_ms=frame_ms, hop_ms=hop_ms, n_mels=n_mels, n_mfcc=n_mfcc)
    x, scale = (pcm[:, None, :, None], PCM_SCALE) if features == "pcm" else (frontend(pcm), 1.0)
    if layout == "sequence" and features != "pcm":
        x = x.reshape(len(x), 1, *frontend.output_shape[:2])  # same bytes: frame by frame
    meta = {"source": str(folder), "classes": names, "features": features, "frontend": frontend.to_json(),
            "file_sample_rates": rates, "layout": layout}
    title = name or folder.resolve().name
    if split == "random" and test_speakers is None:
        return with_seeded_test(title, x, y, len(names), seed, val_size, test_size, scale, meta)
    speakers = np.asarray([clips.speakers[i] for i in rows], dtype=object)
    groups = speaker_split(speakers, seed, val_size, test_size, test_speakers)
    return by_speaker(title, x, y, speakers, groups, len(names), scale,
                      {**meta, "split_seed": seed, "test_split": "speaker"})


def by_speaker(title: str, x, y, speakers: np.ndarray, groups: dict[str, list[str]], classes: int,
               scale: float, meta: dict) -> Dataset:
    """The clips of each part's speakers (``groups``: part -> speakers), recorded in ``meta``."""
    rows = {part: np.flatnonzero(np.isin(speakers, members)) for part, members in groups.items()}
    meta = {**meta, **{f"{part}_speakers": members for part, members in groups.items()}}
    parts = [array for part in ("train", "val", "test") for array in (x[rows[part]], as_labels(y[rows[part]]))]
    return Dataset(title, *parts, classes, scale, meta)
