"""What our GenerationConfig means in vLLM's offline API, as plain data, so a CPU test can check it against vLLM.

Written against vLLM 0.32.0 (the `gpu` extra's pin), read from its PyPI wheel
vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl (sha256 5e2ecdc5..., vllm/_version.py commit g5df63a720):
- `vllm/entrypoints/llm.py`: `LLM.__init__(model, *, tokenizer, tensor_parallel_size, dtype, seed: int = 0,
  gpu_memory_utilization, ..., **kwargs)`, the rest going to `EngineArgs` (`max_model_len`, `load_format`);
  `LLM.chat(messages, sampling_params, use_tqdm, ..., chat_template_content_format, add_generation_prompt,
  continue_final_message, tools, chat_template_kwargs, ...) -> list[RequestOutput]`, in the order of `messages`.
- `vllm/sampling_params.py`: `SamplingParams(n=1, temperature, top_p, seed: int | None, stop, max_tokens, ...)`;
  `_verify_args` refuses temperature outside [0, 2], top_p outside (0, 1] and max_tokens < 1.
- `vllm/outputs.py`: `RequestOutput.prompt_token_ids` and `.outputs: list[CompletionOutput]`, each with `text`,
  `token_ids` and `finish_reason`; `vllm/v1/engine/__init__.py`: finish reasons "stop", "length", "abort",
  "error", "repetition".
Nothing here imports vLLM; transforms/llm/handlers.py's VLLMHandler passes these to it on the GPU worker.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from transforms.llm.cache import Generation

MAX_TEMPERATURE = 2.0  # SamplingParams._verify_args: "temperature must be in [0, 2]"
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")  # vllm/config/model.py ModelDType
FINISHED = ("stop", "length")  # a whole response; "abort" and "error" are failed requests (v1 FinishReason)


class EngineSettings(Protocol):
    """The fields of our GenerationConfig (transforms/llm/handlers.py) read here; a Protocol, so this module does not
    import the handlers that import it."""

    model_path: str
    tokenizer_path: str | None
    tensor_parallel_size: int
    gpu_memory_utilization: float
    dtype: str
    seed: int | None
    load_format: str
    max_model_len: int | None

    def sampling(self) -> dict: ...


class Completion(Protocol):
    """The fields of vllm.outputs.CompletionOutput we read."""

    text: str
    token_ids: Sequence[int]
    finish_reason: str | None


class RequestResult(Protocol):
    """The fields of vllm.outputs.RequestOutput we read."""

    prompt_token_ids: Sequence[int] | None
    outputs: Sequence[Completion]


class VLLMRequestFailed(RuntimeError):
    """vLLM ended a request without a whole response (aborted or errored): the batch fails so Beam retries it."""


def engine_args(cfg: EngineSettings) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM(...)`: the local folder, parallelism, memory, dtype and weight format."""
    args: dict[str, Any] = {
        "model": cfg.model_path,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "dtype": cfg.dtype,
        "seed": 0 if cfg.seed is None else cfg.seed,  # LLM's seed is an int (global RNG); sampling seeds per request
        "load_format": cfg.load_format,  # "dummy": random weights, nothing read from the folder but config/tokenizer
    }
    if cfg.tokenizer_path is not None:
        args["tokenizer"] = cfg.tokenizer_path  # the one max_prompt_tokens counted with
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    return args


def sampling_args(cfg: EngineSettings) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams(...)`: exactly the sampling that keys the cache, one response each."""
    return {**cfg.sampling(), "n": 1}


def chat_args() -> dict[str, Any]:
    """Keyword arguments of `LLM.chat` besides the conversations and sampling params: the prompt is rendered as the
    transformers backend and PromptCounter render it (the model's template, generation prompt added, no extra
    template kwargs), and no progress bar in a worker's log."""
    return {"use_tqdm": False, "add_generation_prompt": True, "continue_final_message": False,
            "chat_template_content_format": "string", "chat_template_kwargs": None}


def to_generation(result: RequestResult, *, model: str, index: int) -> Generation:
    """One RequestOutput -> our Generation; an aborted or errored request raises instead of being cached."""
    if len(result.outputs) != 1:
        raise VLLMRequestFailed(f"vLLM returned {len(result.outputs)} completions for request {index}; "
                                "SamplingParams n=1 asks for exactly 1")
    out = result.outputs[0]
    if out.finish_reason not in FINISHED:
        raise VLLMRequestFailed(f"vLLM ended request {index} with finish_reason={out.finish_reason!r}, not one of "
                                f"{FINISHED}; the batch fails so the runner retries it (see the vLLM log for why)")
    return Generation(text=out.text, model=model, finish_reason=out.finish_reason,
                      prompt_tokens=len(result.prompt_token_ids or ()), completion_tokens=len(out.token_ids))
