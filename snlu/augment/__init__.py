"""Waveform augmentations of the training split (``augment:`` in a recipe): speed perturbation and additive noise.

Each is a registered component (``AUGMENTATIONS``) called on one utterance's 16 kHz samples in the data-loader
workers, with a NumPy generator the loader seeds from (seed, epoch, utterance index): the draws of a run do not
depend on the workers, and a resumed run draws what the uninterrupted one drew. SpecAugment stays in the frontend
(it masks features on the model's device).
"""
