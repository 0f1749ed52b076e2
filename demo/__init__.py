"""The demo model zoo: a development tool that writes example scopes under a models root."""

from ._zoo import DEMO_SCOPES, MODELS_PER_SCOPE, build_demo_monitoring, build_demo_zoo

__all__ = ["DEMO_SCOPES", "MODELS_PER_SCOPE", "build_demo_monitoring", "build_demo_zoo"]
