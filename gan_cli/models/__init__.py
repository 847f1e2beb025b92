"""The models, one LightningModule each, by family: gans/ (GAN, DCGAN, cGAN, InfoGAN, LAPGAN, SSGAN),
translation/ (pix2pix, CycleGAN, UNIT, direct translation, GP-GAN), text_to_image/ (GAN-INT-CLS, StackGAN) and
classic/ (autoencoders, VAE, RBM, DBN, CapsNet, the classifier). What they share: base.py (every model),
adversarial.py (every GAN: losses, hook points for tricks, updates) and contract.py (what a model can do)."""
