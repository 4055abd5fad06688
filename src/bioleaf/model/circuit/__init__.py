"""The dendritic microcircuit: its parameters and synapses, one step function per population kind, and one
presentation of a batch with the running sums its plasticity rules read."""
