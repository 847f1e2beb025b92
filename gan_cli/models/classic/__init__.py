"""The lectures' other models: autoencoders and the VAE, the RBM and the DBN, CapsNet, and the image classifier
that judges generated digits."""
