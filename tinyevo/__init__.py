"""tinyevo: hardware-aware evolutionary neural architecture search for microcontrollers."""
__version__ = "0.1.0"
