"""Variational autoencoders (Kingma & Welling 2014; beta-VAE, Higgins et al. 2017): config,
training loop (the negative ELBO with a learned decoder scale) and export of the decoder.

A VAE covers modes where a GAN drops them, but a smooth decoder of a unimodal prior has to cross
the gaps between separated modes: the mass it puts there is what the diagnostics' high-quality
share measures. A large beta switches latent dimensions off (posterior collapse): the run counts
the active ones (Burda et al. 2016).
"""
