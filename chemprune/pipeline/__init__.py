"""The molecular-property pipeline: what ``chemprune train``, ``prune``, ``search`` and
``evaluate`` run, built on the engines (``chemprune.prune``, ``chemprune.distill``,
``chemprune.nas``, ``chemprune.distributed``) and the models (``chemprune.models``).

``train`` (runs with resumable state: :mod:`.train_state`; steps: :mod:`.train_step`;
optimizers and schedules: :mod:`.optim`), ``finetune`` (a short distilled training after
compression), ``compress_schnet`` (prune a trained SchNet for real), ``search_schnet``
(architecture search guided by a trained SchNet), ``evaluate`` (MAE/RMSE on a split).
Modules are imported where used, so ``import chemprune`` stays light.
"""
