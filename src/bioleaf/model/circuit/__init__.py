"""The dendritic microcircuit, one module per piece.

- :mod:`~bioleaf.model.circuit.params`: parameters, modes, idealisations, the :class:`Context` handed down;
- :mod:`~bioleaf.model.circuit.synapses`: the four synapse types (:class:`Microcircuit`) and how they start;
- :mod:`~bioleaf.model.circuit.cells`: each cell type's somatic current from its compartments;
- :mod:`~bioleaf.model.circuit.pathways`: the synaptic products onto each compartment;
- :mod:`~bioleaf.model.circuit.spec`: how each copy of the circuit is stepped (a frozen spec per layer);
- :mod:`~bioleaf.model.circuit.layout`: the row layout of stacked copies of a batch;
- :mod:`~bioleaf.model.circuit.state`: a copy's populations and what one step produced;
- :mod:`~bioleaf.model.circuit.step`: one time step, one plain function per population kind;
- :mod:`~bioleaf.model.circuit.recording`: what an observer sees of every step;
- :mod:`~bioleaf.model.circuit.sums`: the running sums the rules read;
- :mod:`~bioleaf.model.circuit.presentation`: one presentation, and the mapping from its sums to the rules;
- :mod:`~bioleaf.model.circuit.periods`: one presentation per sample, a free period then a teacher period.
"""

from bioleaf.model.circuit.params import (ERROR_REFERENCES, FEEDBACK_MODES, IDEALISATIONS, INTERNEURON_MODES, NUDGES,
                                          CircuitParams, Context)
from bioleaf.model.circuit.periods import present_periods
from bioleaf.model.circuit.presentation import Plasticity, Presentation, present, present_phases
from bioleaf.model.circuit.recording import Observer, Population, Recorder
from bioleaf.model.circuit.synapses import Microcircuit, build_circuit

__all__ = ["ERROR_REFERENCES", "FEEDBACK_MODES", "IDEALISATIONS", "INTERNEURON_MODES", "NUDGES", "CircuitParams",
           "Context", "Microcircuit", "Observer", "Plasticity", "Population", "Presentation", "Recorder",
           "build_circuit", "present", "present_periods", "present_phases"]
