"""edgebert's BERT: one readable file.

Encoder layers may differ from each other in attention-head count and FFN width, which is
what a sliced DynaBERT sub-network looks like. `from_pretrained` maps a Hugging Face BERT
checkpoint onto these modules; `save`/`load` keep edgebert's own format (config JSON +
safetensors), which also holds sliced shapes that transformers cannot load.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgebert.errors import ModelError
from edgebert.model.config import FORMAT_VERSION, BertConfig
from edgebert.model.factorise import linear_cols, linear_rows, make_embedding, make_linear

__all__ = ["BertConfig", "Bert", "load_model", "is_edgebert_dir", "CONFIG_FILE", "WEIGHTS_FILE"]

CONFIG_FILE = "edgebert_config.json"
WEIGHTS_FILE = "model.safetensors"


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word = make_embedding(c.vocab_size, c.hidden_size, c.embedding_rank, c.pad_token_id)
        self.position = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type = nn.Embedding(max(c.type_vocab_size, 1), c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.hidden_dropout)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.drop(self.norm(x))


class Attention(nn.Module):
    def __init__(self, c: BertConfig, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, c.head_dim
        inner = heads * c.head_dim
        self.query = make_linear(c.hidden_size, inner, c.weight_rank)
        self.key = make_linear(c.hidden_size, inner, c.weight_rank)
        self.value = make_linear(c.hidden_size, inner, c.weight_rank)
        self.out = make_linear(inner, c.hidden_size, c.weight_rank)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.drop_attn = nn.Dropout(c.attention_dropout)
        self.drop = nn.Dropout(c.hidden_dropout)

    def _split(self, t, heads: int):
        b, s, _ = t.shape
        return t.view(b, s, heads, self.head_dim).transpose(1, 2)

    def forward(self, x, mask_bias, head_mask=None, heads: int | None = None):
        """heads=None: every head (the plain module that gets exported). heads=n: the first n heads,
        computed on views of the shared weights (dynamic training: gradients land on this module)."""
        if heads is None:
            heads = self.heads
            q, k, v, out = self.query(x), self.key(x), self.value(x), self.out
        else:
            inner = heads * self.head_dim
            q, k, v = (linear_rows(lin, x, inner) for lin in (self.query, self.key, self.value))
            out = lambda c: linear_cols(self.out, c, inner)  # noqa: E731
        b, s, _ = x.shape
        q, k, v = self._split(q, heads), self._split(k, heads), self._split(v, heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + mask_bias
        probs = self.drop_attn(torch.softmax(scores, dim=-1))
        if head_mask is not None:  # used by rewiring to take d(loss)/d(head)
            probs = probs * head_mask.view(1, -1, 1, 1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, heads * self.head_dim)
        return self.norm(x + self.drop(out(ctx)))


class FeedForward(nn.Module):
    def __init__(self, c: BertConfig, width: int):
        super().__init__()
        self.up = make_linear(c.hidden_size, width, c.weight_rank)
        self.down = make_linear(width, c.hidden_size, c.weight_rank)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.hidden_dropout)

    def forward(self, x, width: int | None = None):
        """width=None: every neuron; width=n: the first n, on views of the shared weights (dynamic training)."""
        if width is None:
            return self.norm(x + self.drop(self.down(F.gelu(self.up(x)))))
        h = F.gelu(linear_rows(self.up, x, width))
        return self.norm(x + self.drop(linear_cols(self.down, h, width)))


class Layer(nn.Module):
    def __init__(self, c: BertConfig, heads: int, ffn: int):
        super().__init__()
        self.attention = Attention(c, heads)
        self.ffn = FeedForward(c, ffn)

    def forward(self, x, mask_bias, head_mask=None, heads: int | None = None, width: int | None = None):
        return self.ffn(self.attention(x, mask_bias, head_mask, heads), width)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class ClassifierHead(nn.Module):
    """pooler + classifier on the [CLS] state (pool="cls", BERT's head) or on the tokens' mean (pool="mean",
    an exit head of a model with exit_pool "mean"; it needs the attention mask)."""

    def __init__(self, c: BertConfig, pool: str = "cls"):
        super().__init__()
        self.pool = pool
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)
        self.drop = nn.Dropout(c.hidden_dropout)
        self.classifier = nn.Linear(c.hidden_size, c.num_labels)

    def forward(self, hidden, attention_mask=None):
        first = hidden[:, 0] if self.pool == "cls" else mean_pool(hidden, attention_mask)
        return self.classifier(self.drop(torch.tanh(self.pooler(first))))


class Bert(nn.Module):
    """forward(input_ids, attention_mask, token_type_ids=None) -> embeddings [B, H] or logits [B, L]."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config, h, f) for h, f in zip(config.heads, config.ffn))
        self.head = ClassifierHead(config) if config.task == "classification" else None
        # Early exit: exits[i] classifies after layer i; the last layer's exit is `head` (model/exits.py).
        if config.exits:
            self.exits = nn.ModuleList(ClassifierHead(config, config.exit_pool) for _ in range(config.num_layers - 1))

    @property
    def output_name(self) -> str:
        return "logits" if self.config.task == "classification" else "embeddings"

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, head_mask=None, layers=None):
        """Hidden states after the embeddings and after every layer (list of [B, S, H])."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        states = [x]
        for i, layer in enumerate(self.layers if layers is None else layers):
            x = layer(x, bias, None if head_mask is None else head_mask[i])
            states.append(x)
        return states

    def pool(self, hidden, attention_mask):
        if self.head is not None:
            return self.head(hidden)
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.pool(self.encode(input_ids, attention_mask, token_type_ids)[-1], attention_mask)

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        # One metadata key: safetensors writes several in random order, which breaks byte-identical builds.
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": f"edgebert/{FORMAT_VERSION}"})

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---- loading ---------------------------------------------------------------------------

_HF_LAYER = {
    "attention.self.query": "attention.query",
    "attention.self.key": "attention.key",
    "attention.self.value": "attention.value",
    "attention.output.dense": "attention.out",
    "attention.output.LayerNorm": "attention.norm",
    "intermediate.dense": "ffn.up",
    "output.dense": "ffn.down",
    "output.LayerNorm": "ffn.norm",
}
_HF_TOP = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "head.pooler",
    "classifier": "head.classifier",
}


def _hf_name(name: str) -> str | None:
    """Map a transformers BERT parameter name onto ours (None: not used by edgebert)."""
    for prefix in ("bert.", "model."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
    if name.startswith("encoder.layer."):
        _, _, idx, rest = name.split(".", 3)
        for hf, ours in _HF_LAYER.items():
            if rest.startswith(hf + "."):
                return f"layers.{idx}.{ours}{rest[len(hf) :]}"
        return None
    for hf, ours in _HF_TOP.items():
        if name.startswith(hf + "."):
            return ours + name[len(hf) :]
    return None


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    st, binf = directory / "model.safetensors", directory / "pytorch_model.bin"
    try:
        if st.exists():
            from safetensors.torch import load_file

            return load_file(str(st))
        if binf.exists():
            return torch.load(str(binf), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Weights only load failed" not in str(exc):
            raise ModelError(f"cannot read weights {binf}: {str(exc)[:200]}; the file looks corrupt") from None
        raise ModelError(
            f"{binf} holds Python objects besides tensors, which edgebert will not unpickle (unpickling can run "
            "code). Convert it once, in an environment you trust: load it with torch.load(path, "
            "weights_only=False), keep the tensors, and save them with safetensors.torch.save_file(state_dict, "
            f"'{directory / 'model.safetensors'}')"
        ) from None
    except Exception as exc:  # truncated or corrupt files surface here in many forms
        path = st if st.exists() else binf
        raise ModelError(
            f"cannot read weights {path}: {type(exc).__name__}: {str(exc)[:200]}. "
            "The file looks corrupt or truncated; re-download or re-save the model."
        ) from None
    raise ModelError(f"{directory} has no weights: expected model.safetensors or pytorch_model.bin")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def is_edgebert_dir(directory: Path) -> bool:
    return (Path(directory) / CONFIG_FILE).exists()


def _check_dir(directory: Path) -> Path:
    directory = Path(directory)
    if not directory.exists():
        raise ModelError(f"model directory {directory} does not exist; pass --model with a BERT checkpoint folder")
    if not directory.is_dir():
        raise ModelError(f"{directory} is not a directory; --model takes a folder with config.json and weights")
    if not (directory / "config.json").exists() and not is_edgebert_dir(directory):
        raise ModelError(f"{directory} has no config.json (nor {CONFIG_FILE}); it is not a BERT checkpoint folder")
    return directory


def _config(source: Path, make) -> BertConfig:
    """Parse a config, naming the file in any complaint about its fields."""
    try:
        return make()
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None


def _build(config: BertConfig, state: dict[str, torch.Tensor], source: Path) -> Bert:
    """Check the weights against the config's shapes on the meta device, then allocate.

    A config that claims vocab_size 10**10 would otherwise ask torch for terabytes before any check."""
    with torch.device("meta"):
        expected = Bert(config).state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ModelError(
            f"{source}: weights are missing {len(missing)} tensors (first: {missing[0]}); is this a BERT checkpoint?"
        )
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ModelError(f"{source}: tensor {k} has shape {tuple(state[k].shape)}, config says {tuple(v.shape)}")
    model = Bert(config)
    model.load_state_dict({k: state[k].float() for k in expected}, strict=True)
    return model.eval()


def from_pretrained(directory: str | Path) -> Bert:
    """Load a transformers BERT checkpoint folder (config.json + safetensors/bin) offline."""
    directory = _check_dir(Path(directory))
    hf = _read_json(directory / "config.json")
    if not isinstance(hf, dict):
        raise ModelError(f"{directory / 'config.json'} must be a JSON object of fields, got a {type(hf).__name__}")
    model_type = hf.get("model_type")
    if model_type != "bert":
        raise ModelError(
            f"{directory} holds a {model_type!r} model, not BERT; edgebert supports model_type 'bert' checkpoints"
        )
    config = _config(directory / "config.json", lambda: BertConfig.from_hf(hf))
    raw = _read_weights(directory)
    state = {}
    for name, tensor in raw.items():
        ours = _hf_name(name)
        if ours is not None:
            state[ours] = tensor
    if config.task == "embedding":
        # Keep the pretrained pooler out of the model: sentence encoders mean-pool.
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    return _build(config, state, directory)


def load_model(directory: str | Path) -> Bert:
    """Load edgebert's own format (possibly sliced), or a transformers BERT checkpoint."""
    directory = _check_dir(Path(directory))
    if not is_edgebert_dir(directory):
        return from_pretrained(directory)
    path = directory / CONFIG_FILE
    config = _config(path, lambda: BertConfig.from_dict(_read_json(path)))
    state = _read_weights(directory)
    return _build(config, state, directory)


def with_task_head(model: Bert, labels: tuple[str, ...]) -> Bert:
    """A copy of `model` with a fresh classification head (for fine-tuning a sentence encoder)."""
    config = replace(model.config, task="classification", num_labels=len(labels), labels=tuple(labels))
    new = Bert(config)
    own = new.state_dict()
    own.update({k: v for k, v in model.state_dict().items() if not k.startswith("head.")})
    new.load_state_dict(own)
    return new
