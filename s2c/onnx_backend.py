"""An `onnx.backend.base.Backend` that runs models through the whole s2c path.

`prepare` compiles the model, encodes the image to bytes and decodes it again; `run` executes that
decoded image in the reference interpreter. So `onnx.backend.test.BackendTest` exercises
frontend, passes, partition, placement, routing, image format and interpreter together.

    import s2c.onnx_backend as backend
    outputs = backend.run_model(model, [x])                  # int8, the default mode
    outputs = backend.run_model(model, [x], mode="float")    # fp32 kernels

Keyword options: `mode` ("int8" or "float"), `machine`, `batch`, as for `s2c compile`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from s2c.driver import CompileOptions, compile_model
from s2c.io_check import stack_inputs, unstack_outputs


class S2CRep(BackendRep):
    """A compiled model: the decoded image and its interpreter."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.program = decode_image(image)
        self.interpreter = Interpreter(self.program)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run on inputs given as a list (graph input order), a dict, or one array."""
        arrays = _as_dict(inputs, [io.name for io in self.program.inputs])
        stacked = stack_inputs(self.program.inputs, arrays, "inputs")
        single = all(tuple(arrays[io.name].shape) == tuple(io.shape) for io in self.program.inputs)
        outputs, _ = self.interpreter.run(stacked, activity=False)
        outputs = unstack_outputs(outputs, single)
        return tuple(outputs[io.name] for io in self.program.outputs)


def _as_dict(inputs: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict):
        return {k: np.asarray(v) for k, v in inputs.items()}
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    return {name: np.asarray(array) for name, array in zip(names, inputs)}


class S2CBackend(Backend):
    """onnx backend API over s2c (device CPU: the interpreter runs on the host CPU)."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> S2CRep:
        options = CompileOptions(
            mode=kwargs.get("mode", "int8"),
            machine=kwargs.get("machine", "board"),
            batch=int(kwargs.get("batch", 1)),
            placer=kwargs.get("placer", "cpsat"),
        )
        result = compile_model(model, options, emit=lambda text: None)
        return S2CRep(encode_image(result.program))

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper().startswith("CPU")


prepare = S2CBackend.prepare
run_model = S2CBackend.run_model
run = run_model
supports_device = S2CBackend.supports_device
is_compatible = S2CBackend.is_compatible
