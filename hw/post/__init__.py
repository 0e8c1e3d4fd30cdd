"""The output pipeline: bias + requantization, then the activation LUT or PWL engine
(docs/output_pipeline.md)."""

from .output_pipeline import OutputPipeline

__all__ = ["OutputPipeline"]
