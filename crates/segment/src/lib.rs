//! Segmentation (issue 7): the `segment` step on ONNX Runtime.
