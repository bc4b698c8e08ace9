//! Analysis: ONNX models run on dedicated threads over decoded frames.

pub mod runtime;
