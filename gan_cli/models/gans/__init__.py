"""Noise-to-image GANs: GAN, DCGAN and cGAN (one module), InfoGAN, LAPGAN and the semi-supervised GAN."""
