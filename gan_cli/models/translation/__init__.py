"""Image-to-image models: pix2pix, CycleGAN, UNIT, direct translation (base.py: what they share), and GP-GAN's
Blending GAN."""
