"""BioLeaF: bio-plausible local learning for spiking neural networks."""

__version__ = "0.1.0"
