"""lumen: an LLVM-backed JIT array compiler for NumPy code (the public names of SPEC.md)."""
from .devices import devices
from .errors import (CacheWarning, DeviceError, LumenError, TracingError, UnsupportedError,
                     VerificationError)
from .frontend.check_grad import check_grad
from .frontend.control import cond, scan, while_loop
from .frontend.jit import jit
from .frontend.precompile import ShapeDtype
from .frontend.profile import profile
from .frontend.transforms import (grad, hessian, hvp, jacobian, lop, rop, stop_gradient,
                                  value_and_grad)
from . import nn
from . import random

__version__ = "0.1.0"

__all__ = ["jit", "profile", "grad", "value_and_grad", "rop", "lop", "jacobian", "hessian", "hvp",
           "stop_gradient", "check_grad", "scan", "while_loop", "cond", "nn", "random", "devices", "TracingError", "UnsupportedError", "DeviceError", "LumenError",
           "VerificationError", "CacheWarning", "ShapeDtype", "__version__"]
