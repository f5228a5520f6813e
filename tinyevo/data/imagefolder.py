"""A user's own images, one folder per class: the layout most image data comes in.

Two layouts are read::

    DIR/train/<class>/*.jpg  and  DIR/test/<class>/*.jpg   the test split is DIR/test
    DIR/<class>/*.png                                       the test split is a seeded share

Classes are the folder names in sorted order (label 0 is the first); ``meta["classes"]`` lists them.
In the first layout, other folders beside ``train/`` and ``test/`` (a ``val/``, say) are not read.
Validation is a seeded share of the training images, as for every dataset. Files are decoded with
Pillow (JPEG, PNG, or any other still-image format it reads); names starting with a dot are
skipped. Images are stored as uint8 pixels (scale 1/255), NHWC.

Options:
- ``image_size``: ``[height, width]`` (or one number for a square) every image is resized to
  (bilinear, aspect ratio not kept). Default: the size of the first image, and an image of another
  size is an error naming it.
- ``color_mode``: ``"rgb"`` or ``"grayscale"``. Default: as the files are, i.e. one channel when
  every image is grayscale, else three (grayscale images are repeated over RGB).
- ``limit_per_class``: read only the first N files (sorted by name) of each class folder of each
  split, for a quick look at a large folder.
- ``cache`` (default True) and ``cache_dir``: keep the decoded pixels in the dataset cache folder
  (``tinyevo.data.disk_cache``; never in the data folder), reused while no file is added, removed
  or changed. CIFAR-10 as 60,000 JPEGs decodes in about 11 CPU seconds; from the cache it loads
  in about 1 s.

CIFAR-10 reads through this loader from ``../shared/datasets/cifar10-jpg`` (``train/`` and
``test/``, 10 class folders of 32x32 JPEGs). Those are JPEG re-encodings of CIFAR-10, so pixels
differ slightly from the official binary batches that the ``cifar10`` dataset reads.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tinyevo.data.base import (DATASETS, TEST_SIZE, VAL_SIZE, Dataset, folder_entries, with_official_test,
                               with_seeded_test)
from tinyevo.data.disk_cache import cached_arrays, files_fingerprint
from tinyevo.errors import TinyevoError

SPLITS = ("train", "test")
COLOR_MODES = ("rgb", "grayscale")
#: Pillow modes read as one grayscale channel when ``color_mode`` is not given.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})


@dataclass(frozen=True)
class ImageFiles:
    """The image files of one split (``root/<class>/<file>``), sorted, with their labels."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray


def list_images(root: Path, limit_per_class: int | None = None) -> ImageFiles:
    """The files of ``root``'s class folders, or a one-line error for a layout that cannot be read."""
    folders = visible_entries(root, folders=True)
    if not folders:
        raise TinyevoError(f"image folder {str(root)!r} has no class folders; put the images of each "
                           f"class in a folder of its own, e.g. {root}/cat/0001.jpg")
    files, labels = [], []
    for label, folder in enumerate(folders):
        entries = visible_entries(folder, folders=False)
        if not entries:
            raise TinyevoError(f"class folder {str(folder)!r} has no images; add some or remove the folder")
        entries = entries[:limit_per_class] if limit_per_class is not None else entries
        files += entries
        labels += [label] * len(entries)
    if len(folders) < 2:
        raise TinyevoError(f"image folder {str(root)!r} has one class folder ({folders[0].name!r}); a "
                           f"classifier needs at least two")
    return ImageFiles(root, tuple(p.name for p in folders), tuple(files), np.asarray(labels, np.int64))


def visible_entries(folder: Path, folders: bool) -> list[Path]:
    """The sub-folders (``folders``) or the files of ``folder``, sorted by name, hidden ones left out;
    a file where a class folder should be is ignored, a folder where an image should be is an error."""
    entries = folder_entries(folder)
    if folders:
        return [folder / e.name for e in entries if e.is_dir()]
    inner = next((e for e in entries if e.is_dir()), None)
    if inner is not None:
        root = folder.parent
        raise TinyevoError(f"{folder / inner.name} is a folder inside class folder {str(folder)!r}; a "
                           f"class folder holds image files only (a train/test layout needs both "
                           f"{root}/train and {root}/test)")
    return [folder / e.name for e in entries]


def find_splits(folder: Path, limit_per_class: int | None) -> dict[str, ImageFiles]:
    """``{"train": ..., "test": ...}`` when the folder has both, else ``{"all": ...}``."""
    if not all((folder / split).is_dir() for split in SPLITS):
        return {"all": list_images(folder, limit_per_class)}
    train, test = (list_images(folder / split, limit_per_class) for split in SPLITS)
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        raise TinyevoError(f"image folder {str(folder)!r}: train and test have different classes "
                           f"(only in train: {only_train or 'none'}; only in test: {only_test or 'none'}); "
                           f"give both splits the same class folders")
    return {"train": train, "test": test}


def checked_options(image_size, color_mode, limit_per_class) -> tuple[tuple[int, int] | None, str | None]:
    """(height, width) or None and the color mode, or a one-line error."""
    if image_size is not None:
        size = [image_size] * 2 if isinstance(image_size, int) and not isinstance(image_size, bool) \
            else image_size
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise TinyevoError(f"image_size must be [height, width] in pixels (or one number), got "
                               f"{image_size!r}")
        image_size = (int(size[0]), int(size[1]))
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise TinyevoError(f"color_mode must be one of {', '.join(COLOR_MODES)} (or left out: as the "
                           f"files are), got {color_mode!r}")
    if limit_per_class is not None and (isinstance(limit_per_class, bool) or not isinstance(limit_per_class, int)
                                        or limit_per_class < 1):
        raise TinyevoError(f"limit_per_class must be a positive number of files, got {limit_per_class!r}")
    return image_size, color_mode


def open_image(path: Path) -> Image.Image:
    """The decoded image, or a one-line error naming the file."""
    try:
        image = Image.open(io.BytesIO(path.read_bytes()))  # bytes first: Pillow reads headers in small steps
        image.load()
        return image
    except UnidentifiedImageError:
        reason = "not a format Pillow knows"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
    raise TinyevoError(f"{path} is not an image Pillow can read ({reason}); remove it from the class folder")


def read_image(path: Path, size: tuple[int, int] | None, reference: tuple[Path, tuple[int, int]],
               color_mode: str | None) -> np.ndarray:
    """One image as (height, width, channels) uint8: 1 channel (grayscale) or 3 (RGB)."""
    with open_image(path) as image:
        height_width = (image.height, image.width)
        if size is None and height_width != reference[1]:
            raise TinyevoError(f"{path} is {height_width[0]}x{height_width[1]} pixels (height x width) but "
                               f"{reference[0]} is {reference[1][0]}x{reference[1][1]}; give image_size "
                               f"(e.g. image_size = {list(reference[1])} in [dataset_options]) to resize "
                               f"every image to one size")
        gray = color_mode == "grayscale" or (color_mode is None and image.mode in GRAY_MODES)
        mode = "L" if gray else "RGB"
        converted = image if image.mode == mode else image.convert(mode)
        if size is not None and height_width != size:
            converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def first_size(files: ImageFiles) -> tuple[Path, tuple[int, int]]:
    """The first image of a split and its (height, width): the size every image must have by default."""
    with open_image(files.files[0]) as image:
        return files.files[0], (image.height, image.width)


def read_images(files: ImageFiles, size, reference, color_mode) -> np.ndarray:
    """Every image of ``files`` as one (N, H, W, C) uint8 array.

    One thread: most of the time goes to Pillow's Python code that parses the headers (a 32x32 JPEG
    decodes in a tenth of it), so threads only contend for the GIL (measured: more CPU, no faster)."""
    return stack([read_image(path, size, reference, color_mode) for path in files.files])


def stack(images: list[np.ndarray]) -> np.ndarray:
    """(N, H, W, C) from images of one size; grayscale ones repeated over RGB when any is in colour."""
    channels = max(image.shape[2] for image in images)
    out = np.empty((len(images), *images[0].shape[:2], channels), np.uint8)
    for row, image in enumerate(images):
        out[row] = image  # (H, W, 1) broadcasts to (H, W, 3)
    return out


@DATASETS.register("imagefolder")
def load_imagefolder(data_dir=None, seed: int = 0, image_size: int | list | None = None,
                     color_mode: str | None = None, val_size: float | int = VAL_SIZE,
                     test_size: float | int = TEST_SIZE, limit_per_class: int | None = None,
                     cache: bool = True, cache_dir=None,
                     name: str | None = None) -> Dataset:
    """The images under ``data_dir``, e.g. CIFAR-10 as JPEGs:
    ``load_dataset("imagefolder", data_dir="../shared/datasets/cifar10-jpg")``. ``test_size`` applies
    only to a folder without train/ and test/; ``cache=False`` decodes every time."""
    if data_dir is None:
        raise TinyevoError("dataset 'imagefolder' needs the folder of images: pass --data-dir DIR "
                           "(DIR/<class>/*.jpg, or DIR/train/<class>/ and DIR/test/<class>/)")
    size, color_mode = checked_options(image_size, color_mode, limit_per_class)
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise TinyevoError(f"data dir {str(folder)!r} for dataset 'imagefolder' {problem}; give the folder "
                           f"that holds one folder of images per class")
    splits = find_splits(folder, limit_per_class)
    arrays = decoded(folder, splits, size, color_mode, limit_per_class, cache, cache_dir)
    first = next(iter(splits.values()))
    meta = {"source": str(folder), "classes": list(first.classes),
            "test_split": "folder" if "test" in splits else "seeded"}
    common = dict(scale=1.0 / 255, meta=meta)
    title, classes = name or folder.resolve().name, len(first.classes)
    if "test" in splits:
        return with_official_test(title, arrays["train"], splits["train"].labels, arrays["test"],
                                  splits["test"].labels, classes, seed, val_size, **common)
    return with_seeded_test(title, arrays["all"], first.labels, classes, seed, val_size, test_size, **common)


def decoded(folder: Path, splits: dict[str, ImageFiles], size, color_mode, limit_per_class, cache: bool,
            cache_dir) -> dict[str, np.ndarray]:
    """The pixels of each split; with ``cache``, from the disk cache (``cache_dir``, None: the
    default folder) when the same files were decoded the same way before."""
    def decode():
        reference = first_size(next(iter(splits.values())))
        arrays = {part: read_images(files, size, reference, color_mode)
                  for part, files in splits.items()}
        if len({x.shape[3] for x in arrays.values()}) > 1:  # a grayscale split beside a colour one
            arrays = {part: np.broadcast_to(x, (*x.shape[:3], 3)).copy() for part, x in arrays.items()}
        return arrays

    if not cache:
        return decode()
    key = {"folder": str(folder.resolve()), "image_size": size, "color_mode": color_mode,
           "limit_per_class": limit_per_class}
    fingerprint = files_fingerprint(folder, [p for files in splits.values() for p in files.files])
    return cached_arrays("imagefolder", key, fingerprint, decode, cache_dir)
