"""Export stage: ExecuTorch .pte (XNNPACK) and LiteRT .tflite artifacts with parity, delegation
and latency checks, described by a manifest.json."""
from .exporter import FORMATS, MANIFEST, ExportConfig, ExportError, ModelOrigin, export
from .parity import DEFAULT_TOLERANCE, Parity

__all__ = ["DEFAULT_TOLERANCE", "ExportConfig", "ExportError", "FORMATS", "MANIFEST", "ModelOrigin", "Parity",
           "export"]
