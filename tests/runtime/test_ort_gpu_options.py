"""GPU execution-provider options, checked on CPU: what a TensorRT / CUDA EP session would be given."""

import os

import pytest

from tt_deploy.errors import BundleError
from tt_deploy.runtime.session import BACKENDS, SessionConfig, execution_providers, provider_options

TRT, CUDA = BACKENDS["ort-trt"], BACKENDS["ort-cuda"]
REACH, DIRECTION = "a" * 64, "b" * 64  # two skills' fused graphs of the same shapes, different weights


def test_each_graph_gets_its_own_trt_engine_cache_and_the_directories_exist(tmp_path):
    reach = provider_options(TRT, tmp_path, SessionConfig(), REACH)
    direction = provider_options(TRT, tmp_path, SessionConfig(), DIRECTION)
    assert reach["trt_engine_cache_path"] != direction["trt_engine_cache_path"]
    for opts in (reach, direction):
        assert os.path.isdir(opts["trt_engine_cache_path"]) and os.path.isdir(opts["trt_timing_cache_path"])
        assert str(tmp_path / "engines") in opts["trt_timing_cache_path"]  # not the working directory
    assert reach["trt_timing_cache_path"] == direction["trt_timing_cache_path"]
    assert not reach["trt_fp16_enable"] and provider_options(TRT, tmp_path, SessionConfig(trt_precision="fp16"),
                                                             REACH)["trt_fp16_enable"]  # fmt: skip


def test_the_cuda_ep_follows_tensorrt_and_keeps_fp32_out_of_tf32(tmp_path):
    providers = execution_providers(TRT, tmp_path / "trt", SessionConfig(), REACH)
    assert [p for p, _ in providers] == [TRT, CUDA]
    assert providers[1][1] == {"use_tf32": 0}
    assert execution_providers(CUDA, tmp_path, SessionConfig(trt_precision="tf32"), REACH) == [(CUDA, {"use_tf32": 1})]
    assert execution_providers("CPUExecutionProvider", tmp_path, SessionConfig(), REACH) == ["CPUExecutionProvider"]
    assert not (tmp_path / "engines").exists()  # only the TensorRT EP writes into the bundle


def test_a_bundle_where_the_caches_cannot_be_made_is_a_one_line_bundle_error(tmp_path):
    (tmp_path / "engines").write_text("not a directory")  # fails for root too, unlike a read-only directory
    with pytest.raises(BundleError, match="cannot create the TensorRT EP caches") as err:
        provider_options(TRT, tmp_path, SessionConfig(), REACH)
    assert "\n" not in str(err.value)
