"""Helpers of the pde app tests."""

from __future__ import annotations

from polydiff.cli import main


def cli(*argv: str) -> int:
    """``polydiff pde ...`` in this process: its exit status, argument errors included."""
    try:
        return main(["pde", *map(str, argv)])
    except SystemExit as stop:  # argparse's errors exit 2 before a command runs
        return int(stop.code or 0)


HOST_READS = frozenset({"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__",
                        "__index__"})
"""Tensor methods that bring a value to the host (on CUDA: wait for the device)."""
HOST_DATA = frozenset({"as_tensor", "tensor"})
"""Factories that copy host data in (on CUDA: a blocking upload)."""


class HostTraffic:
    """A sampler hook recording every host read and host upload of torch calls from the end
    of the first reverse step to the end of the loop (each step runs the same code).

    ``calls`` lists ``(function, file:line of the caller)``. Use as
    ``with HostTraffic() as probe: ... sample(..., hooks=[..., probe])``.
    """

    needs_grad = False

    def __init__(self) -> None:
        import traceback

        import torch
        from torch.overrides import TorchFunctionMode

        calls = self.calls = []

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "")
                host_data = name in HOST_DATA and args and not isinstance(args[0], torch.Tensor)
                if name in HOST_READS or host_data:
                    frame = traceback.extract_stack(limit=2)[0]
                    calls.append((name, f"{frame.filename}:{frame.lineno}"))
                return func(*args, **(kwargs or {}))

        self.mode, self.active = _Mode(), False

    # the SamplerHook interface (duck-typed: only after_step and finalize matter)
    def before_model(self, state, x):
        return x

    def on_x0(self, state, x0):
        return x0

    def after_step(self, state, x_prev):
        if not self.active:
            self.mode.__enter__()
            self.active = True
        return x_prev

    def finalize(self, x):
        self.stop()
        return x

    def stop(self) -> None:
        if self.active:
            self.mode.__exit__(None, None, None)
            self.active = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
