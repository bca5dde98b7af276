"""The jobs: what ``chemprune train``, ``prune``, ``search``, ``generate`` and ``evaluate`` run,
above :mod:`chemprune.molecules` and :mod:`chemprune.deploy`.

* ``train`` (resumable state: ``train_state``; steps: ``train_step``; optimizers and schedules:
  ``optim``), ``finetune`` (a short distilled training after compression);
* ``trained`` - a trained checkpoint with its data set and split, loaded and checked once;
* ``prune_settings``, ``compress_schnet``, ``prune_job`` - prune a trained SchNet for real;
* ``search_settings``, ``search_schnet``, ``search_job`` - architecture search guided by a
  trained SchNet;
* ``generate`` - molecule GANs; ``evaluate`` - MAE/RMSE on a split; ``showcase`` - the demo.

Modules are imported where used, so ``import chemprune`` stays light.
"""
