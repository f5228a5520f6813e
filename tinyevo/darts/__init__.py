"""Gradient-based search (survey section I-B): DARTS (Liu et al. 2019) on the nb201 cell.

- ``relaxed_nb201``: the continuous relaxation (mixed ops, softmax architecture weights);
- ``discrete``: the weights of the discretized network from the relaxed one;
- ``expected_cost``: differentiable expected MACs, flash and peak SRAM;
- ``bilevel``: first- and second-order architecture steps, the hardware penalty;
- ``remedies``: early stopping (DARTS+), progressive shrinking (P-DARTS), perturbation-based selection;
- ``search``: the resumable one-shot search; ``job``: it inside a run folder (``--strategy darts``).
"""
