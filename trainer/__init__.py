"""collapse-lab trainer: trains GANs on collapse benchmarks and exports generators to ONNX."""
