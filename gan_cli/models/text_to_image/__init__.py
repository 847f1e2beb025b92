"""Text-to-image models: GAN-INT-CLS (text_cgan) and StackGAN, with what they share (base.py) and the
matching-aware discriminator (matching.py)."""
