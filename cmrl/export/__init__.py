"""Trained policies as self-contained files for deployment: TorchScript (torch alone) or ONNX (onnxruntime).

    python scripts/export.py checkpoint=runs/.../checkpoint.pt format=onnx out=policy.onnx

`ExportedPolicy` (policy.py) is the acting chain as one module; formats.py writes and reads the
files; exporter.py goes from a checkpoint to a file; latency.py times the file against the library.
"""
from __future__ import annotations

from .exporter import ExportResult, check_export_target, export_checkpoint
from .formats import FORMATS, read_metadata, write_policy
from .policy import ExportedPolicy, RankedExportedPolicy, exported_policy

__all__ = ["FORMATS", "ExportResult", "ExportedPolicy", "RankedExportedPolicy", "check_export_target",
           "export_checkpoint", "exported_policy", "read_metadata", "write_policy"]
