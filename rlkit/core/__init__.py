"""Run infrastructure shared by the CLIs: the run directory and its logs (``logger``), progress lines
(``progress``), Weights & Biases and TensorBoard hparams (``tracking``)."""
