"""Audio: WAV files in, log-mel / MFCC features out (``frontend``), and reading clips (``wav``)."""
from tinyevo.audio.frontend import FRONTEND_GENES, KINDS, FrontEnd, FrontEndCost

__all__ = ["FRONTEND_GENES", "KINDS", "FrontEnd", "FrontEndCost"]
