"""The tools wing: analyses and utilities built on the model, the rules and the training loop (benchmarks,
scaling sweeps, rule comparisons, the locality and equivalence checks, NIR export, plots). The model never
imports a tool."""
