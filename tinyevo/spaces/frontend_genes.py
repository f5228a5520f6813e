"""Front-end genes: the audio front-end's settings searched with the network (as Edge Impulse's EON
Tuner searches its signal processing), for the ``kws`` and ``tcn`` spaces.

Space options (both spaces):

- ``frontend``: None (default: the network reads ``input_shape`` as the data gives it), ``"search"``
  (every gene of ``tinyevo.audio.FRONTEND_GENES``: kind, frame_ms, hop_ms, n_mels, n_mfcc, with
  its choices), or an object of genes to their choices, e.g. ``{"kind": ["mfcc"], "frame_ms":
  [32, 40], "n_mfcc": [10, 13]}`` (the genes it leaves out stay at ``frontend_base``'s values);
- ``frontend_base``: the settings that are not searched, a ``FrontEnd.to_json()`` object; above all
  the data's ``sample_rate`` and ``clip_ms``. ``tinyevo search`` fills it from the dataset's
  ``meta["frontend"]`` (``wavfolder`` with ``features="pcm"``: raw clips).

Each searched gene is a head gene ``frontend_<gene>`` of the genome (so the fixed-length vector,
the mutation and the crossover cover it). Decoding builds ``base.with_genes(...)`` and an
Architecture whose input is that front-end's features, laid out as the space reads them ((frames,
coefficients, 1) for ``kws``, (1, frames, coefficients) for ``tcn``), and which records its
front-end (``Architecture.frontend``, ``tinyevo.audio.features``). A log-mel front-end has no DCT:
its ``n_mfcc`` gene is inactive and recorded at the base's value, so it does not make a new
candidate. Settings that do not fit together (a hop longer than the frame) do not decode.

Readable strings start with the front-end, e.g. ``mfcc_f32_h16_m40_c10|c64_k10x4_s2x2-ds64_k3``
(``c``: coefficients, only for MFCC), then ``|`` and the network.
"""
from __future__ import annotations

import itertools
import numbers
import re

from tinyevo.audio.features import feature_shape, frontend_record
from tinyevo.audio.frontend import FRONTEND_GENES, KINDS, FrontEnd
from tinyevo.errors import InvalidArchitecture, TinyevoError

PREFIX = "frontend_"
SEARCH = "search"
SEPARATOR = "|"
TEXT = re.compile(r"(logmel|mfcc)_f([\d.]+)_h([\d.]+)_m(\d+)(?:_c(\d+))?")


def gene_choices(option, space: str) -> dict[str, list]:
    """The searched genes and their choices from the ``frontend`` option; one line when malformed."""
    if option is None:
        return {}
    if option == SEARCH:
        return {gene: list(choices) for gene, choices in FRONTEND_GENES.items()}
    if not isinstance(option, dict) or not option:
        raise TinyevoError(f"{space} option frontend must be \"search\" or an object of front-end genes "
                           f"({', '.join(FRONTEND_GENES)}) to lists of choices, got {option!r:.60}")
    genes = {}
    for gene, choices in option.items():
        if gene not in FRONTEND_GENES:
            raise TinyevoError(f"{space} option frontend: no gene {gene!r}; the front-end genes are "
                               f"{', '.join(FRONTEND_GENES)}")
        values = list(choices) if isinstance(choices, (list, tuple)) else [choices]
        good = (all(v in KINDS for v in values) if gene == "kind" else
                all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 for v in values))
        if not values or not good or len(set(values)) != len(values):
            expected = f"some of {', '.join(KINDS)}" if gene == "kind" else "positive numbers"
            raise TinyevoError(f"{space} option frontend: {gene} must be a list of distinct {expected}, "
                               f"got {choices!r}")
        genes[gene] = values
    return genes


class FrontEndGenes:
    """The front-end part of a space's genome: its head genes, decoding and readable string."""

    def __init__(self, option, base, layout: str, space: str):
        self.option, self.layout, self.space = option, layout, space
        self.genes = gene_choices(option, space)
        if base is not None and not isinstance(base, dict):
            raise TinyevoError(f"{space} option frontend_base must be an object of front-end settings "
                               f"(e.g. {{\"sample_rate\": 8000, \"clip_ms\": 1000}}), got {base!r:.60}")
        self.base_settings = dict(base or {})
        self.base = FrontEnd.from_json(self.base_settings) if self.genes else None

    @property
    def active(self) -> bool:
        return bool(self.genes)

    def head_genes(self) -> list[tuple[str, list]]:
        return [(PREFIX + gene, list(choices)) for gene, choices in self.genes.items()]

    def options(self) -> dict:
        """What rebuilds this part of the space (nothing when it searches no front-end)."""
        return {"frontend": self.option, "frontend_base": self.base_settings} if self.active else {}

    # --- decoding ------------------------------------------------------------------------------
    def frontend(self, genome: dict) -> FrontEnd | None:
        """The genome's front-end (None when the space searches none); InvalidArchitecture when its
        settings do not fit together."""
        if not self.active:
            return None
        genes = {gene: genome[PREFIX + gene] for gene in self.genes}
        try:
            frontend = self.base.with_genes(genes)
            if frontend.kind == "logmel" and frontend.n_mfcc != self.base.n_mfcc:
                frontend = frontend.with_genes({"n_mfcc": self.base.n_mfcc})  # no DCT: not a gene
            return frontend
        except TinyevoError as error:
            raise InvalidArchitecture(f"{self.space} genome: front-end {error}") from None

    def input_shape(self, genome: dict, default: tuple) -> tuple:
        """The network's input: the front-end's features in this space's layout, or ``default``."""
        frontend = self.frontend(genome)
        return default if frontend is None else feature_shape(frontend, self.layout)

    def record(self, genome: dict) -> dict | None:
        """``Architecture.frontend`` of the genome (None without front-end genes)."""
        frontend = self.frontend(genome)
        return None if frontend is None else frontend_record(frontend, self.layout)

    def inactive_genes(self, genome: dict) -> set[str]:
        """Genes that do not change the candidate: ``n_mfcc`` of a log-mel front-end."""
        kind = genome.get(PREFIX + "kind", self.base.kind if self.base else None)
        return {PREFIX + "n_mfcc"} if kind == "logmel" and "n_mfcc" in self.genes else set()

    def assignments(self) -> list[dict]:
        """Every distinct choice of the front-end genes that fits the base settings, as genome head
        genes (``frontend_kind``, ...); a log-mel front-end once, its inactive ``n_mfcc`` at its
        first choice (as ``parse`` writes it)."""
        out = []
        for values in itertools.product(*self.genes.values()):
            genes = dict(zip(self.genes, values))
            if (genes.get("kind", self.base.kind) == "logmel" and "n_mfcc" in genes
                    and genes["n_mfcc"] != self.genes["n_mfcc"][0]):
                continue
            try:
                self.base.with_genes(genes)
            except TinyevoError:
                continue
            out.append({PREFIX + gene: value for gene, value in genes.items()})
        return out

    # --- readable strings ----------------------------------------------------------------------
    def describe(self, genome: dict, network: str) -> str:
        frontend = self.frontend(genome)
        if frontend is None:
            return network
        text = f"{frontend.kind}_f{frontend.frame_ms:g}_h{frontend.hop_ms:g}_m{frontend.n_mels}"
        text += f"_c{frontend.n_mfcc}" if frontend.kind == "mfcc" else ""
        return text + SEPARATOR + network

    def parse(self, text: str) -> tuple[dict, str]:
        """(the front-end genes, the network's string) of a ``describe`` string."""
        if not self.active:
            return {}, text
        head, _, network = text.partition(SEPARATOR) if isinstance(text, str) else ("", "", "")
        match = TEXT.fullmatch(head)
        if match is None:
            raise InvalidArchitecture(f"{text!r:.60} does not start with a front-end: write e.g. "
                                      f"mfcc_f32_h16_m40_c10{SEPARATOR} or logmel_f32_h16_m40{SEPARATOR} "
                                      f"before the network")
        kind, frame, hop, mels, coefficients = match.groups()
        values = {"kind": kind, "frame_ms": _number(frame), "hop_ms": _number(hop), "n_mels": int(mels),
                  "n_mfcc": int(coefficients) if coefficients else self.base.n_mfcc}
        genes = {}
        for gene, value in values.items():
            if gene in self.genes:
                genes[PREFIX + gene] = value
            elif value != getattr(self.base, gene) and not (gene == "n_mfcc" and kind == "logmel"):
                raise InvalidArchitecture(f"{text!r:.60}: {gene} is not searched here and stays "
                                          f"{getattr(self.base, gene)}")
        if kind == "logmel" and "n_mfcc" in self.genes:
            genes[PREFIX + "n_mfcc"] = self.genes["n_mfcc"][0]
        return genes, network


def _number(text: str):
    value = float(text)
    return int(value) if value.is_integer() else value
