"""`bench speed`: how fast the shared trainer runs a trial, beside the loop research code uses.

Each requested method trains the real model through the real code path -- ``setup_trial`` and
``Trainer.train_epoch(max_steps=...)`` -- on synthetic data of a real dataset's shape (CIFAR:
50,000 training images of 3x32x32 uint8), and its test evaluation is ``Trainer.evaluate``.  In
the same run, a plain reference loop trains the protocol's model the way the seed papers' code
does: a torch DataLoader with per-sample torchvision ``RandomCrop(32, padding=4)`` and
``RandomHorizontalFlip``, fp32, ``loss.item()`` after every step.  Both see the same images,
model, optimiser, batch size and augmentation distribution, so their ratio is the speed-up the
trainer's design buys, not a cheaper recipe.

The synthetic dataset is built in memory here and never registered: `bench run` cannot pick it.
Step time does not depend on pixel values or labels, so random ones time the real thing.

    options.py    what is measured (SpeedOptions), resolved and checked
    synthetic.py  the synthetic dataset of a real one's shape
    timing.py     device-synchronised timing and host-sync counting
    loops.py      the trainer's loop and the reference DataLoader loop
    packing.py    K concurrent trial processes on one device (--pack)
    measure.py    timing every loop, the rows and their ratios
    report.py     the table
    command.py    the `bench speed` sub-command
"""
