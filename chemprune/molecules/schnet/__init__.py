"""The engines' SchNet adapters: what :mod:`chemprune.engines` needs to know about SchNet.

* ``prune_groups`` - SchNet's pruning groups, shrinking a pruned SchNet;
* ``prune_stats`` - channel statistics and filter profiles for data-driven pruners;
* ``refit`` - least-squares refit of the layers after pruning;
* ``distill`` - SchNet distillation (``SchNetDistillation``, the modes);
* ``nas`` - SchNet's search space (``SchNetSupernet``); ``nas_distill`` - its search loss.
"""
