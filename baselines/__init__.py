"""The original's models, mixers and routers. They know nothing of the suite."""
from .config import ModelConfig, ModelConfigError
from .models import MODELS, AttnOnly, ConvOnly, MixerLM, Output, Routed, build_model, count_params, usage_of
from .routers import ROUTERS, GumbelRouter, Router, causal_ema, check_router_spec, make_router, resolve_router, router_source

__all__ = ["ModelConfig", "ModelConfigError", "MODELS", "AttnOnly", "ConvOnly", "MixerLM", "Output",
           "Routed", "build_model", "count_params", "usage_of", "ROUTERS", "GumbelRouter", "Router", "causal_ema", "check_router_spec", "make_router", "resolve_router",
           "router_source"]
