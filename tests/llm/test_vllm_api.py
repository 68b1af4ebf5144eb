"""Our vllm backend speaks vLLM 0.32's API: argument names, value ranges and output fields, checked without vLLM.

The oracle is vLLM's own source, transcribed below from the PyPI wheel the `gpu` extra pins,
vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl (vllm/_version.py: 0.32.0, commit g5df63a720). vLLM cannot run
here (no GPU, and its CUDA wheels are not installed), so its output objects are stood in for by dataclasses with
the field names of vllm/outputs.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.config import ConfigError, from_mapping
from transforms.llm.cache import cache_key
from transforms.llm.handlers import GenerationConfig
from transforms.llm.vllm_api import VLLMRequestFailed, chat_args, engine_args, sampling_args, to_generation

# vllm/entrypoints/llm.py, LLM.__init__ (line 178): the named parameters ...
LLM_INIT = {
    "model", "runner", "convert", "tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code",
    "allowed_local_media_path", "allowed_media_domains", "tensor_parallel_size", "dtype", "quantization", "revision",
    "tokenizer_revision", "chat_template", "seed", "gpu_memory_utilization", "cpu_offload_gb", "offload_group_size",
    "offload_num_in_group", "offload_prefetch_step", "offload_params", "enforce_eager", "enable_return_routed_experts",
    "return_sampling_mask", "disable_custom_all_reduce", "hf_token", "hf_overrides", "mm_processor_kwargs",
    "pooler_config", "structured_outputs_config", "profiler_config", "attention_config", "kv_cache_memory_bytes",
    "compilation_config", "quantization_config", "logits_processors", "spec_method", "spec_model", "spec_tokens",
}
# ... and the EngineArgs fields (vllm/engine/arg_utils.py) that our arguments reach through **kwargs.
ENGINE_ARGS_VIA_KWARGS = {"max_model_len", "load_format"}
LLM_INT_ARGS = {"seed", "tensor_parallel_size"}  # `seed: int = 0` (no None since ModelConfig.seed became an int)
# vllm/entrypoints/llm.py, LLM.chat (line 617), besides `messages` and `sampling_params`.
LLM_CHAT = {
    "use_tqdm", "lora_request", "priority", "chat_template", "chat_template_content_format", "add_generation_prompt",
    "continue_final_message", "tools", "chat_template_kwargs", "tokenization_kwargs", "mm_processor_kwargs",
}
CONTENT_FORMATS = {"auto", "string", "openai"}  # ChatTemplateContentFormatOption
# vllm/sampling_params.py, class SamplingParams: its fields (the underscored private ones left out).
SAMPLING_PARAMS = {
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "watermarking", "top_p",
    "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs",
    "prompt_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens",
    "include_stop_str_in_output", "output_kind", "structured_outputs", "logit_bias", "allowed_token_ids",
    "extra_args", "bad_words", "stream_interval", "skip_reading_prefix_cache", "output_text_buffer_length",
    "prompt_logprob_token_ids", "prompt_logprob_start", "thinking_token_budget", "repetition_detection",
    "trace_decode_token_ids", "logprob_token_ids", "flat_logprobs", "skip_clone", "routed_experts_prompt_start",
}
LOAD_FORMATS = {"auto", "pt", "safetensors", "npcache", "dummy"}  # some of vllm/config/load.py's; we use two


@dataclass
class CompletionOutput:
    """vllm/outputs.py CompletionOutput's fields that we read (and the ones before them)."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: None = None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    """vllm/outputs.py RequestOutput's constructor arguments that we read."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


def vllm_cfg(**kw) -> GenerationConfig:
    return GenerationConfig(backend="vllm", model_path="/models/llama", **kw)


def test_engine_arguments_are_llm_parameters_with_vllm_types():
    for cfg in (vllm_cfg(), vllm_cfg(seed=None, max_model_len=4096, tokenizer_path="/models/tok",
                                     load_format="dummy", dtype="bfloat16", tensor_parallel_size=4)):
        args = engine_args(cfg)
        assert set(args) <= LLM_INIT | ENGINE_ARGS_VIA_KWARGS, set(args) - LLM_INIT - ENGINE_ARGS_VIA_KWARGS
        assert all(isinstance(args[k], int) for k in LLM_INT_ARGS & set(args))
        assert args["load_format"] in LOAD_FORMATS and args["model"] == "/models/llama"
    args = engine_args(vllm_cfg(seed=None, max_model_len=4096, tokenizer_path="/models/tok", load_format="dummy"))
    assert args["seed"] == 0 and args["max_model_len"] == 4096 and args["tokenizer"] == "/models/tok"
    assert "max_model_len" not in engine_args(vllm_cfg()) and "tokenizer" not in engine_args(vllm_cfg())


def test_sampling_arguments_are_the_cached_sampling_and_one_response():
    cfg = vllm_cfg(temperature=0.0, top_p=0.7, max_tokens=512, seed=None)
    args = sampling_args(cfg)
    assert set(args) <= SAMPLING_PARAMS
    assert args == {"temperature": 0.0, "top_p": 0.7, "max_tokens": 512, "seed": None, "n": 1}
    # the cache key is made from cfg.sampling(): what vLLM samples with must be that, plus n=1
    assert {k: v for k, v in args.items() if k != "n"} == cfg.sampling()
    messages = [{"role": "user", "content": "x = 1"}]
    assert cache_key(model=cfg.model_name, sampling=cfg.sampling(), messages=messages) != cache_key(
        model=cfg.model_name, sampling=sampling_args(vllm_cfg(temperature=0.2)), messages=messages)


def test_chat_arguments_are_llm_chat_parameters():
    args = chat_args()
    assert set(args) <= LLM_CHAT
    assert args["use_tqdm"] is False and args["add_generation_prompt"] is True
    assert args["continue_final_message"] is False  # vLLM refuses it together with add_generation_prompt
    assert args["chat_template_content_format"] in CONTENT_FORMATS


def test_values_vllm_refuses_are_refused_when_the_config_is_read():
    with pytest.raises(ConfigError, match=r"temperature \(2.5\) > 2.0, vLLM's limit"):
        from_mapping(GenerationConfig, {"backend": "vllm", "model_path": "/m", "temperature": 2.5}, where="gen")
    with pytest.raises(ConfigError, match="'fp8' is not a vLLM dtype; choose one of auto, half"):
        from_mapping(GenerationConfig, {"backend": "vllm", "model_path": "/m", "dtype": "fp8"}, where="gen")
    with pytest.raises(ConfigError, match="load_format 'dummy' is a vllm setting"):
        from_mapping(GenerationConfig, {"model_path": "/m", "load_format": "dummy"}, where="gen")
    with pytest.raises(ConfigError, match="load_format"):
        from_mapping(GenerationConfig, {"backend": "vllm", "model_path": "/m", "load_format": "gguf"}, where="gen")
    # the transformers backend keeps its own ranges: temperature 2.5 and torch dtype names pass
    assert GenerationConfig(model_path="/m", temperature=2.5, dtype="bfloat16").temperature == 2.5


def test_dummy_weights_never_share_cache_keys_with_real_weights():
    real, dummy = vllm_cfg(), vllm_cfg(load_format="dummy")
    assert dummy.model_name != real.model_name and dummy.model_name.startswith(real.model_name)
    messages = [{"role": "user", "content": "def f(): pass"}]
    assert (cache_key(model=real.model_name, sampling=real.sampling(), messages=messages)
            != cache_key(model=dummy.model_name, sampling=dummy.sampling(), messages=messages))


def test_outputs_are_read_as_generations():
    done = RequestOutput("0", None, [5, 6, 7], [CompletionOutput(0, "def f():\n    pass", [1, 2, 3, 4], None, None,
                                                                   "stop")])
    cut = RequestOutput("1", None, [5], [CompletionOutput(0, "x" * 8, list(range(8)), None, None, "length")])
    g = to_generation(done, model="m", index=0)
    assert (g.text, g.model, g.finish_reason, g.prompt_tokens, g.completion_tokens) == (
        "def f():\n    pass", "m", "stop", 3, 4)
    assert to_generation(cut, model="m", index=1).finish_reason == "length"


@pytest.mark.parametrize("reason", ["abort", "error", "repetition", None])
def test_a_request_that_did_not_finish_fails_the_batch(reason):
    out = RequestOutput("2", None, [5], [CompletionOutput(0, "par", [9], None, None, reason)])
    with pytest.raises(VLLMRequestFailed, match=f"request 7 with finish_reason={reason!r}"):
        to_generation(out, model="m", index=7)
    two = RequestOutput("3", None, [5], [CompletionOutput(0, "a", [1], None, None, "stop")] * 2)
    with pytest.raises(VLLMRequestFailed, match="2 completions for request 3"):
        to_generation(two, model="m", index=3)
