"""The model wing: what a BioLeaF network is and how its cells and synapses behave.

- :mod:`bioleaf.model.neurons`: the integrate-and-fire soma and its traces;
- :mod:`bioleaf.model.encoding`: images to input spike trains;
- :mod:`bioleaf.model.losses`: the spiking error function and the target counts;
- :mod:`bioleaf.model.plasticity`: the local learning rules, one pure function per synapse type;
- :mod:`bioleaf.model.network`: the bottom-up network alone (inference, the backprop twins' forward pass);
- :mod:`bioleaf.model.backprop`: spike-train-level backprop's explicit gradient (the reference);
- :mod:`bioleaf.model.circuit`: the dendritic microcircuit and one presentation of a batch.

Nothing here imports the learning rules, the training loop or the tools built on top.
"""
