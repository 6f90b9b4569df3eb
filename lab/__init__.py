"""The core shared by the trainer and the service: numpy + onnxruntime, no Flask, no torch.

- `noise`: seeded latents and noise (same seed, same samples everywhere);
- `samplers`, `sampling`: the EDM samplers and the one dispatcher that draws a model
  version's samples (fused graph, step graphs or numpy);
- `runtime`: onnxruntime sessions, providers, batched runs;
- `cards`: the model repository's contract (schema, names, read/validate/write, sha256,
  tensors, classifier references);
- `classify`, `diagnostics/`: the mode-collapse report.

The trainer and the service import this package; it imports neither.
"""
