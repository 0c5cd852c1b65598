"""The original's models, mixers and routers. They know nothing of the suite."""
from .config import ModelConfig, ModelConfigError
from .models import MODELS, AttnOnly, ConvOnly, MixerLM, Output, Routed, build_model, count_params
from .routers import ROUTERS, GumbelRouter, causal_ema

__all__ = ["ModelConfig", "ModelConfigError", "MODELS", "AttnOnly", "ConvOnly", "MixerLM", "Output",
           "Routed", "build_model", "count_params", "ROUTERS", "GumbelRouter", "causal_ema"]
