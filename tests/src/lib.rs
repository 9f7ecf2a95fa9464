//! The control-plane harness for the end-to-end tests.
