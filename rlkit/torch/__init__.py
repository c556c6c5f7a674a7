"""PyTorch parts of CSRO: networks (`networks.py`) and pure loss functions (`losses.py`)."""
