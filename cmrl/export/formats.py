"""Writing an `ExportedPolicy` as a file that runs without cmrl: TorchScript or ONNX.

TorchScript (`torch.jit.load(path)`, torch alone): `policy(obs)` draws its noise with torch.randn
from torch's global generator (seed it with torch.manual_seed); `policy(obs, noise)` takes the
noise (T, B * N, A). The settings are in the archive's extra file `cmrl.json`.

ONNX (`onnxruntime.InferenceSession(path)`, onnxruntime alone): inputs `obs` (B, S) float32 and
`noise` (T, B * N, A) float32, output `action` (B, A). `noise` is optional: its default is an empty
tensor (T, 0, A) (an initializer of the same name, which ONNX lets a caller override), and an empty
noise makes the graph draw it with RandomNormalLike. That draw is seeded by
`onnxruntime.set_seed(seed)` called before the session is created; each session then replays the
same sequence. The settings are in the model's metadata (`cmrl.json`). onnxruntime warns, when it
creates a session, that the initializer `noise` is also a graph input: that is the overridable
default, as intended (SessionOptions.log_severity_level = 3 hides the note).
"""
from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cmrl.errors import ConfigError, UserError

from .policy import ExportedPolicy

FORMATS = ("torchscript", "onnx")
METADATA_KEY = "cmrl.json"
ONNX_OPSET = 20
ONNX_INPUTS = ("obs", "noise")
ONNX_OUTPUT = "action"


def write_policy(policy: ExportedPolicy, path: str | Path, fmt: str, metadata: dict[str, Any]) -> Path:
    """Write `policy` to `path` in format `fmt` (see FORMATS), with `metadata` stored inside."""
    path = Path(path)
    if fmt == "torchscript":
        save_torchscript(policy, path, metadata)
    elif fmt == "onnx":
        save_onnx(policy, path, metadata)
    else:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return path


def save_torchscript(policy: ExportedPolicy, path: Path, metadata: dict[str, Any]) -> None:
    """torch.jit.script the policy and save it with `metadata` as the extra file cmrl.json."""
    scripted = torch.jit.script(policy.eval())
    torch.jit.save(scripted, str(path), _extra_files={METADATA_KEY: json.dumps(metadata)})


class _GivenNoise(nn.Module):
    """The policy's `act(obs, noise)` as `forward`: the function the ONNX graph holds."""

    def __init__(self, policy: ExportedPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, obs: Tensor, noise: Tensor) -> Tensor:
        return self.policy.act(obs, noise)


def save_onnx(policy: ExportedPolicy, path: Path, metadata: dict[str, Any]) -> None:
    """Export `act(obs, noise)` with torch.onnx (a dynamic batch), then make `noise` optional."""
    try:
        import onnx
        import onnxscript  # noqa: F401  # torch.onnx's exporter needs it; fail here with a clear message
    except ImportError as err:
        raise UserError(f"format=onnx needs the onnx and onnxscript packages ({err}): "
                        "pip install 'cmrl[export]'") from err
    policy = policy.eval()
    rows = 2 * policy.candidates
    example = (torch.zeros(2, policy.obs_dim), torch.zeros(policy.noise_steps, rows, policy.action_dim))
    batch = torch.export.Dim("batch", min=1)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it lists the torchvision ops it cannot register, and the like
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_GivenNoise(policy).eval(), example, input_names=list(ONNX_INPUTS),
                                        output_names=[ONNX_OUTPUT], opset_version=ONNX_OPSET, dynamo=True,
                                        dynamic_shapes={"obs": {0: batch},
                                                        "noise": {1: batch * policy.candidates}},
                                        external_data=False, verbose=False)
    finally:
        exporter_log.setLevel(level)
    if program is None:  # the dynamo exporter always returns its program
        raise RuntimeError("torch.onnx.export returned no program")
    model = _with_default_noise(program.model_proto, policy)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _with_default_noise(model: Any, policy: ExportedPolicy) -> Any:
    """Make the graph input `noise` optional: an empty default, and an empty noise drawn in the graph.

        noise' = RandomNormalLike(zeros(T, B * N, A)) if Size(noise) == 0 else noise
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    used = "noise_used"
    for node in _all_nodes(graph):
        node.input[:] = [used if name == "noise" else name for name in node.input]
    steps, n, a = policy.noise_steps, policy.candidates, policy.action_dim

    def const(name: str, values: list[int]) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64,
                                                                                 [len(values)], values))

    draw = helper.make_graph(
        [helper.make_node("Shape", ["obs"], ["noise_batch"], start=0, end=1),
         const("noise_candidates", [n]), const("noise_steps", [steps]), const("noise_dim", [a]),
         helper.make_node("Mul", ["noise_batch", "noise_candidates"], ["noise_rows"]),
         helper.make_node("Concat", ["noise_steps", "noise_rows", "noise_dim"], ["noise_shape"], axis=0),
         helper.make_node("ConstantOfShape", ["noise_shape"], ["noise_zeros"],
                          value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])),
         helper.make_node("RandomNormalLike", ["noise_zeros"], ["noise_drawn"], dtype=TensorProto.FLOAT)],
        "draw_noise", [], [helper.make_tensor_value_info("noise_drawn", TensorProto.FLOAT, None)])
    given = helper.make_graph([helper.make_node("Identity", ["noise"], ["noise_given"])], "given_noise", [],
                              [helper.make_tensor_value_info("noise_given", TensorProto.FLOAT, None)])
    choose = [helper.make_node("Size", ["noise"], ["noise_size"]),
              helper.make_node("Constant", [], ["noise_none"], value=helper.make_tensor("none", TensorProto.INT64,
                                                                                         [], [0])),
              helper.make_node("Equal", ["noise_size", "noise_none"], ["noise_missing"]),
              helper.make_node("If", ["noise_missing"], [used], then_branch=draw, else_branch=given)]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(choose + nodes)
    graph.initializer.append(numpy_helper.from_array(torch.zeros(steps, 0, a).numpy(), "noise"))
    return model


def _all_nodes(graph: Any) -> list[Any]:
    """Every node of `graph` and of the subgraphs its nodes hold (If and Loop bodies)."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                nodes.extend(_all_nodes(sub))
    return nodes


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata a file written by `write_policy` holds (TorchScript extra file or ONNX metadata)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    extra = {METADATA_KEY: ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra[METADATA_KEY])


def load_runner(path: str | Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy function obs (B, S) -> actions (B, A) running a file written by `write_policy`.

    TorchScript runs with torch.jit.load, ONNX with an onnxruntime session of `threads` intra-op
    threads (default: torch's thread count, so that both formats and the library compare alike).
    """
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # not the note that the input `noise` has an (overridable) default
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda obs: session.run(None, {"obs": np.asarray(obs, dtype=np.float32)})[0]
    module = torch.jit.load(str(path))

    def run(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy()

    return run
