"""eval/profile_train_step.py: tracing profiled time back to model parts (no compilation)."""

# ruff: noqa: E501  (HLO lines are kept whole, as the compiler prints them)

import gzip
import json

from eval import profile_train_step as profile

# A trimmed compiled step as `Compiled.as_text()` prints it: an unnamed fusion whose
# computation holds a weight's op_name, a named convolution, a container and its callee,
# unnamed instructions (a weight gradient's convolution, a copy).
HLO = """\
HloModule jit_step, entry_computation_layout={()->f32[]}

%fused_computation.7 (param_0: f32[1,3,3,64]) -> f32[64,3,3] {
  %param_0 = f32[1,3,3,64]{3,2,1,0} parameter(0)
  %bitcast.1 = f32[3,3,64]{2,1,0} bitcast(%param_0), metadata={op_name="state[0][\\'g_s\\'][\\'STB_3\\'][\\'DepthRB_0\\'][\\'Conv_0\\'][\\'kernel\\']"}
  ROOT %transpose.2 = f32[64,3,3]{2,1,0} transpose(%bitcast.1), dimensions={2,0,1}
}

%parallel_convolution.9 (p: f32[2,8,8,64], p.1: f32[3,3,64,64]) -> f32[2,8,8,64] {
  %p = f32[2,8,8,64]{3,2,1,0} parameter(0)
  %p.1 = f32[3,3,64,64]{3,2,1,0} parameter(1)
  ROOT %convolution.9.clone = f32[2,8,8,64]{3,2,1,0} convolution(%p, %p.1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, metadata={op_name="jit(step)/jit(main)/vmap(transpose(jvp(LLICElic)))/LLICElic.synthesis/g_s/STB_3/SCST_0/Dense_1/conv_general_dilated" source_file="x.py" source_line=1}
}

ENTRY %main.1 (Arg_0.1: f32[1,3,3,64], Arg_1.2: f32[2,8,8,64]) -> f32[] {
  %transpose_copy_fusion.3 = f32[64,3,3]{2,1,0} fusion(%Arg_0.1), kind=kLoop, calls=%fused_computation.7
  %call.4 = f32[2,8,8,64]{3,2,1,0} call(%Arg_1.2, %Arg_1.2), to_apply=%parallel_convolution.9
  %multiply.5 = f32[2,8,8,64]{3,2,1,0} multiply(%call.4, %call.4), metadata={op_name="jit(step)/jit(main)/vmap(jvp(LLICElic))/LLICElic.analysis/g_a/CTB_1/Gate_0/mul"}
  %add.6 = f32[] add(%Arg_0.1, %Arg_0.1), metadata={op_name="jit(step)/jit(main)/vmap(jit(norm))/mul"}
  %convolution.8 = f32[3,3,64,64]{3,2,1,0} convolution(%call.4, %Arg_1.2), window={size=8x8 pad=1_1x1_1}, dim_labels=f01b_i01o->01bf
  %negate.9 = f32[] negate(%Arg_0.1)
  ROOT %copy.7 = f32[] copy(%add.6)
}
"""


def test_hlo_op_names_resolves_fusions_and_marks_containers():
    names = profile.hlo_op_names(HLO)
    assert names["call.4"] is None
    assert names["convolution.9.clone"].endswith("Dense_1/conv_general_dilated")
    assert names["transpose_copy_fusion.3"].startswith("state[0]")
    # Unnamed: from the first operand with a name (a container: its callee's name), if any.
    assert names["copy.7"] == names["add.6"]
    assert names["convolution.8"] == names["convolution.9.clone"]
    assert names["negate.9"] == ""


def test_model_part_names_pass_and_module_path():
    names = profile.hlo_op_names(HLO)
    assert profile.model_part(names["convolution.9.clone"]) == (
        "backward",
        "g_s/STB/SCST",
    )
    assert profile.model_part(names["convolution.9.clone"], depth=1) == (
        "backward",
        "g_s",
    )
    assert profile.model_part(names["multiply.5"]) == ("forward", "g_a/CTB/Gate")
    assert profile.model_part(names["transpose_copy_fusion.3"]) == (
        "weights",
        "g_s/STB/DepthRB",
    )
    assert profile.model_part(names["add.6"]) == ("other", "(outside the model)")
    assert profile.model_part("") == ("other", "(unnamed)")
    # A method called inside another module's method: methods are scopes, not modules.
    op_name = (
        "jit(step)/vmap(jvp(M))/M.train_latents/latent_codec.two_pass/"
        "group_models_2.parameters/Dense_0/add"
    )
    assert profile.model_part(op_name) == ("forward", "latent_codec/group_models/Dense")


def write_trace(path, events):
    metadata = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
        {
            "ph": "M",
            "name": "thread_name",
            "pid": 1,
            "tid": 7,
            "args": {"name": "XLA Ops"},
        },
        {
            "ph": "M",
            "name": "thread_name",
            "pid": 1,
            "tid": 8,
            "args": {"name": "Stream #1"},
        },
    ]
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": metadata + events}, f)


def test_time_by_model_part_sums_one_device_timeline(tmp_path):
    trace = tmp_path / "perfetto_trace.json.gz"
    write_trace(trace, [
        {"ph": "X", "pid": 1, "tid": 7, "name": "convolution.9.clone", "dur": 3000},
        {"ph": "X", "pid": 1, "tid": 7, "name": "multiply.5.clone", "dur": 1000},  # a clone
        {"ph": "X", "pid": 1, "tid": 7, "name": "multiply.5", "dur": 500},
        {"ph": "X", "pid": 1, "tid": 7, "name": "call.4", "dur": 9000},  # container: skipped
        {"ph": "X", "pid": 1, "tid": 8, "name": "sm90_xmma_kernel", "dur": 4000},  # a kernel
        {"ph": "X", "pid": 1, "tid": 8, "name": "multiply.5", "dur": 400},  # another timeline
    ])  # fmt: skip
    timeline, traced_ms, parts = profile.time_by_model_part(
        profile.read_trace(trace), profile.hlo_op_names(HLO), 3
    )
    assert timeline == "/device:GPU:0 XLA Ops"
    assert traced_ms == 4.5
    assert parts == [("backward", "g_s/STB/SCST", 3.0), ("forward", "g_a/CTB/Gate", 1.5)]


def test_summarise_trace_leaves_containers_out(tmp_path):
    trace = tmp_path / "perfetto_trace.json.gz"
    write_trace(trace, [
        {"ph": "X", "pid": 1, "tid": 7, "name": "call.4", "dur": 9000},
        {"ph": "X", "pid": 1, "tid": 7, "name": "convolution.9.clone", "dur": 3000},
        {"ph": "X", "pid": 1, "tid": 7, "name": "multiply.5", "dur": 1000},
    ])  # fmt: skip
    names = profile.hlo_op_names(HLO)
    rows = profile.summarise_trace(profile.read_trace(trace), 10, names)
    assert [(name, ms, share) for _, name, ms, share in rows] == [
        ("convolution.9.clone", 3.0, 0.75),
        ("multiply.5", 1.0, 0.25),
    ]
    assert (
        len(profile.summarise_trace(profile.read_trace(trace), 10)) == 3
    )  # without the HLO: every event
