"""The export stage's library: signatures, conversion, quantization, checks, verification."""
