"""s2c: compile ONNX models to SpiNNaker2 memory images and run them in a reference interpreter."""

__version__ = "0.1.0"
