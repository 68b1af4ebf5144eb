"""The three generation backends behind one call, `generate(conversations) -> [Generation]`, and their config.

Backends hold no Beam code (the arrows point one way): transforms/beam/generate.py wraps whichever one the
config names in a RunInference ModelHandler. Heavy packages (transformers, vLLM) are imported in `load()`.
Nothing is downloaded: the in-worker backends load only from a local model folder, with the hub switched off.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Literal, Protocol

from transforms.llm.cache import Generation, Message
from transforms.llm.openai_client import OpenAIClient
from transforms.llm.vllm_api import DTYPES, MAX_TEMPERATURE, chat_args, engine_args, sampling_args, to_generation
from transforms.offline import enforce_offline

GPU_EXTRA = "pip install 'refinery[gpu]'"
LOCAL_BACKENDS = ("transformers", "vllm")  # load weights in the worker, so they need a local model folder


class ModelNotLocal(ValueError):
    """A model or tokenizer named by something other than a local folder: it would have to be downloaded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GenerationConfig:
    """Which model generates, how it samples, and how requests are batched and retried."""

    backend: Literal["transformers", "openai", "vllm"] = "transformers"
    model_path: str  # local model folder (transformers, vllm), or the served model name (openai)
    model_id: str | None = None  # name in cache keys and responses; None = model_path (set it if the folder moves)
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1
    api_key_env: str | None = None  # openai: environment variable holding the API key; None = no auth header
    tokenizer_path: str | None = None  # local tokenizer for max_prompt_tokens; None = model_path (not for openai)
    temperature: float = 0.2  # SwallowCode/SwallowMath vLLM jobs (data-seeds.md §2.2); 0 = greedy
    top_p: float = 0.7  # same source
    max_tokens: int = 8192  # output tokens per response, same source
    seed: int | None = 0  # sampling seed; None = unseeded
    batch_size: int = 32  # prompts per model call; SwallowCode passes 2048 per vLLM generate (§2.2)
    concurrency: int = 8  # openai: requests in flight per worker
    max_prompt_tokens: int | None = None  # longer rendered prompts are skipped and counted; None = send all
    timeout_s: float = 600.0  # openai: per request
    max_retries: int = 5  # openai: retries on 429/5xx/timeouts, backoff doubling from retry_backoff_s
    retry_backoff_s: float = 1.0
    device: str = "cpu"  # transformers: "cpu", "cuda", "cuda:1"
    dtype: str = "auto"  # transformers: torch dtype name; vllm: one of vllm_api.DTYPES; "auto" = as saved
    tensor_parallel_size: int = 1  # vllm: GPUs per model (SwallowCode: 4 for code, 8 for math, §2.2)
    gpu_memory_utilization: float = 0.9  # vllm, §2.2
    max_model_len: int | None = None  # vllm: context length; None = the model's own
    load_format: Literal["auto", "dummy"] = "auto"  # vllm: "dummy" = random weights (throughput checks, no weights)

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is empty; give a local model folder or, for openai, the served model name")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://localhost:8000/v1)")
        if self.backend == "openai" and self.max_prompt_tokens is not None and not self.tokenizer_path:
            raise ValueError("max_prompt_tokens with backend 'openai' needs tokenizer_path (a local tokenizer folder)")
        for name in ("max_tokens", "batch_size", "concurrency", "tensor_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} ({getattr(self, name)}) must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature ({self.temperature}) must be >= 0 and top_p ({self.top_p}) in (0, 1]")
        if self.backend == "vllm":
            self._check_vllm()
        elif self.load_format != "auto":
            raise ValueError(f"load_format {self.load_format!r} is a vllm setting; use backend 'vllm' or drop it")

    def _check_vllm(self) -> None:
        """What vLLM 0.32 would refuse on the GPU worker, refused here while the config is read."""
        if self.temperature > MAX_TEMPERATURE:
            raise ValueError(f"temperature ({self.temperature}) > {MAX_TEMPERATURE}, vLLM's limit; lower it")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not a vLLM dtype; choose one of {', '.join(DTYPES)}")

    @property
    def model_name(self) -> str:
        """The name in cache keys and rows; random (dummy) weights are another model, so they never share a key."""
        name = self.model_id or self.model_path
        return f"{name}#dummy-weights" if self.load_format == "dummy" else name

    def sampling(self) -> dict:
        """The sampling params, as sent to OpenAI-style servers and hashed into cache keys."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "seed": self.seed}


class Handler(Protocol):
    """What the Beam ModelHandler drives: load once per worker, then generate batch after batch."""

    def load(self) -> None: ...

    def generate(self, conversations: list[list[Message]]) -> list[Generation]: ...


class TransformersHandler:
    """A local Hugging Face model: chat template, left-padded batches, `model.generate`, CPU or GPU."""

    def __init__(self, cfg: GenerationConfig) -> None:
        self.cfg = cfg

    def load(self) -> None:
        require_local_model(self.cfg.model_path, flag="--model")
        enforce_offline()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.cfg.model_path, local_files_only=True,
                                                       padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.cfg.model_path, local_files_only=True,
                                                          dtype=self.cfg.dtype).to(self.cfg.device).eval()

    def generate(self, conversations: list[list[Message]]) -> list[Generation]:
        from transformers import set_seed

        cfg, tok = self.cfg, self.tokenizer
        prompts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
        batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(cfg.device)
        sampling = (dict(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p) if cfg.temperature > 0
                    else dict(do_sample=False, temperature=None, top_p=None))
        if cfg.seed is not None:
            set_seed(cfg.seed)  # the same batch then samples the same tokens on a rerun
        out = self.model.generate(**batch, max_new_tokens=cfg.max_tokens, pad_token_id=tok.pad_token_id, **sampling)
        prompt_lens = batch["attention_mask"].sum(dim=1).tolist()
        return [self._response(row, n) for row, n in zip(out[:, batch["input_ids"].shape[1]:].tolist(), prompt_lens)]

    def _response(self, new_ids: list[int], prompt_tokens: int) -> Generation:
        eos = self.model.generation_config.eos_token_id
        stops = set(eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id])
        end = next((i + 1 for i, t in enumerate(new_ids) if t in stops), None)
        ids = new_ids if end is None else new_ids[:end]
        return Generation(text=self.tokenizer.decode(ids, skip_special_tokens=True), model=self.cfg.model_name,
                          finish_reason="length" if end is None else "stop", prompt_tokens=prompt_tokens,
                          completion_tokens=len(ids))


class OpenAIHandler:
    """Any OpenAI-compatible server, `concurrency` requests in flight (see openai_client.py)."""

    def __init__(self, cfg: GenerationConfig) -> None:
        self.cfg = cfg

    def load(self) -> None:
        cfg = self.cfg
        self.client = OpenAIClient(base_url=cfg.base_url or "", model=cfg.model_path, sampling=cfg.sampling(),
                                   api_key_env=cfg.api_key_env, concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
                                   max_retries=cfg.max_retries, retry_backoff_s=cfg.retry_backoff_s)

    def generate(self, conversations: list[list[Message]]) -> list[Generation]:
        return self.client.generate(conversations)


class VLLMHandler:
    """vLLM's offline engine in-process (`LLM.chat` on the whole batch), as SwallowCode's job scripts run it; the
    arguments and the reading of its outputs are in vllm_api.py, checked against vLLM 0.32's signatures."""

    def __init__(self, cfg: GenerationConfig) -> None:
        require_backend(cfg)
        self.cfg = cfg

    def load(self) -> None:
        require_local_model(self.cfg.model_path, flag="--model")
        enforce_offline()
        # vLLM forks its engine process unless told otherwise; a Beam worker holds gRPC threads that a fork would
        # copy mid-lock, so spawn (vLLM itself switches only when CUDA is already initialised).
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        import vllm

        self.llm = vllm.LLM(**engine_args(self.cfg))
        self.params = vllm.SamplingParams(**sampling_args(self.cfg))

    def generate(self, conversations: list[list[Message]]) -> list[Generation]:
        outputs = self.llm.chat(conversations, sampling_params=self.params, **chat_args())
        return [to_generation(o, model=self.cfg.model_name, index=i) for i, o in enumerate(outputs)]


HANDLERS = {"transformers": TransformersHandler, "openai": OpenAIHandler, "vllm": VLLMHandler}
PACKAGES = {"transformers": "transformers", "vllm": "vllm"}  # import name each backend needs; openai uses stdlib


def require_backend(cfg: GenerationConfig) -> None:
    """Fail while the pipeline is built, not on a worker, when the backend's package is missing."""
    package = PACKAGES.get(cfg.backend)
    if package and importlib.util.find_spec(package) is None:
        fix = GPU_EXTRA if cfg.backend == "vllm" else f"pip install {package}"
        raise ImportError(f"backend {cfg.backend!r} needs the {package!r} package, which is not installed; run {fix}")


def require_local_model(path: str, *, flag: str, weights: bool = True) -> None:
    """A model (or tokenizer) folder on this machine; anything else would mean a download, which never happens."""
    if not os.path.isdir(path):
        name = path.rstrip("/").rsplit("/", 1)[-1] or "model"
        raise ModelNotLocal(f"{flag} {path}: not a local model folder; nothing is downloaded at run time - download "
                            f"it first on a machine online (e.g. `hf download {path} --local-dir models/{name}`) and "
                            "pass the folder")
    markers = ("config.json",) if weights else ("tokenizer_config.json", "tokenizer.json")
    if not any(os.path.isfile(os.path.join(path, m)) for m in markers):
        raise ModelNotLocal(f"{flag} {path}: the folder has no {' or '.join(markers)}, so it is not a Hugging Face "
                            f"{'model' if weights else 'tokenizer'} folder; pass the folder that holds it")


def check_model_paths(cfg: GenerationConfig) -> None:
    """Before the run: the folders the workers will load from exist here (the served name is not checked)."""
    if cfg.backend in LOCAL_BACKENDS:
        require_local_model(cfg.model_path, flag="--model")
    if cfg.tokenizer_path is not None:
        require_local_model(cfg.tokenizer_path, flag="generation.tokenizer_path", weights=False)


def build_handler(cfg: GenerationConfig) -> Handler:
    """The unloaded handler for cfg.backend; call `load()` on the worker."""
    require_backend(cfg)
    return HANDLERS[cfg.backend](cfg)


class PromptCounter:
    """Counts a conversation's tokens as the model will see them (chat template applied), for max_prompt_tokens."""

    def __init__(self, path: str) -> None:
        require_local_model(path, flag="generation.tokenizer_path", weights=False)
        enforce_offline()
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)

    def __call__(self, messages: list[Message]) -> int:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
