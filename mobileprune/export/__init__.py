"""Export stage: ExecuTorch .pte (XNNPACK) and LiteRT .tflite artifacts with parity, delegation
and latency checks, described by a manifest.json."""
from .exporter import FORMATS, MANIFEST, ExportError, export
from .parity import DEFAULT_TOLERANCE, Parity

__all__ = ["DEFAULT_TOLERANCE", "ExportError", "FORMATS", "MANIFEST", "Parity", "export"]
