"""BioLeaF: bio-plausible local learning for spiking neural networks.

A dendritic microcircuit (pyramidal cells with basal, apical and somatic compartments, interneurons,
four synapse types) whose local plasticity rules learn supervised tasks, beside its
backprop-trained twins. The Python API (:mod:`bioleaf.api`):

.. code-block:: python

    import bioleaf
    run = bioleaf.fit(bioleaf.preset("digits", epochs=2))
    run.test_accuracy, run.model.predict(images)
"""

__version__ = "0.1.0"

from bioleaf.api import Model, Run, Simulation, fit, load, preset  # noqa: E402
from bioleaf.errors import BioleafError, DataError, UsageError  # noqa: E402
from bioleaf.presets import PRESETS  # noqa: E402

__all__ = ["BioleafError", "DataError", "Model", "PRESETS", "Run", "Simulation", "UsageError", "__version__",
           "fit", "load", "preset"]
