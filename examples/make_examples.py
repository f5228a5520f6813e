"""Write the MLPerf Tiny reference models of ``tinyevo.zoo`` as architecture JSON files next to this script.

Run: ``python examples/make_examples.py`` (writes examples/resnet8.json and examples/ds_cnn.json).
"""
from pathlib import Path

from tinyevo.zoo import MODELS


def main(folder: Path = Path(__file__).resolve().parent) -> list[Path]:
    written = []
    for name, build in MODELS.items():
        path = folder / f"{name}.json"
        path.write_text(build().dumps() + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print(path)
