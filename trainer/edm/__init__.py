"""Score-based models in the EDM formulation (Karras et al. 2022, "Elucidating the Design Space
of Diffusion-Based Generative Models"): config, preconditioning and loss, training loop, export.

The sampler itself (time steps, Euler, Heun) lives in the service (lab.samplers), so the
trainer's evaluations and the export-time diagnostics run the very code that serves requests.
"""
