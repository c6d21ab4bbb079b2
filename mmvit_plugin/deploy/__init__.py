"""Deploying the models: ONNX export with dynamic sizes, checked in onnxruntime against PyTorch
(:mod:`.onnx`; onnx and onnxruntime are imported inside its functions). Not imported by
``mmvit_plugin`` itself."""
