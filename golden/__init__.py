"""Golden cases: small ONNX models with seeded inputs and onnxruntime reference outputs.

`golden.cases` builds the models and loads the stored files; `golden/make_golden.py` writes them.
"""
