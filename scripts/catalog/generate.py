#!/usr/bin/env python3
"""Writes Keyway's model catalog (crates/keyway-core/data/catalog.json) from LiteLLM's model price map.

The data set is `model_prices_and_context_window_backup.json` inside the `litellm` wheel on PyPI
(prices per token in USD, context limits, modalities, capability flags, for every provider LiteLLM
speaks). This script keeps the entries of the providers Keyway can reach, names each model with an
OpenRouter-style slug (`anthropic/claude-3.5-haiku`, `meta-llama/llama-3.3-70b-instruct`), merges
the providers that serve the same model under one slug (each with its own model id and prices), and
converts prices to integer micro-USD per million tokens.

`supplement.json` beside this script adds the few endpoints Keyway ships that the data set does not
price (it is small and named as a source in the output; the data set wins where both have an entry).

    scripts/catalog/generate.py                      # downloads litellm==<pinned> with pip into a temp dir
    scripts/catalog/generate.py --litellm-version X  # another release
    scripts/catalog/generate.py --source FILE.json   # an already extracted price map (no network)
    scripts/catalog/generate.py --out PATH           # somewhere else than the checked-in snapshot
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(ROOT, "crates", "keyway-core", "data", "catalog.json")
PINNED_VERSION = "1.110.2"
DATA_MEMBER = "litellm/model_prices_and_context_window_backup.json"

# ---- the data set ----------------------------------------------------------------------------


def fetch(version: str) -> tuple[dict, str]:
    """pip-downloads the litellm wheel (no dependencies) and reads the price map out of it."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
             f"litellm=={version}", "-d", tmp],
            check=True,
        )
        wheels = glob.glob(os.path.join(tmp, "litellm-*.whl"))
        if not wheels:
            sys.exit("pip downloaded no litellm wheel")
        with zipfile.ZipFile(wheels[0]) as z:
            return json.loads(z.read(DATA_MEMBER)), os.path.basename(wheels[0])


# ---- slugs -----------------------------------------------------------------------------------

# Hugging Face style organisations (DeepInfra, Together, Baseten, Groq ids) -> OpenRouter's author.
ORGS = {
    "meta-llama": "meta-llama", "meta": "meta-llama", "deepseek-ai": "deepseek", "deepseek": "deepseek",
    "qwen": "qwen", "mistralai": "mistralai", "moonshotai": "moonshotai", "zai-org": "z-ai",
    "thudm": "z-ai", "openai": "openai", "google": "google", "minimaxai": "minimax", "nvidia": "nvidia",
    "microsoft": "microsoft", "nousresearch": "nousresearch", "baai": "baai",
    "allenai": "allenai", "gryphe": "gryphe", "sao10k": "sao10k", "arcee-ai": "arcee-ai",
}

# Bedrock model-id vendors -> OpenRouter's author.
BEDROCK_VENDORS = {
    "anthropic": "anthropic", "meta": "meta-llama", "mistral": "mistralai", "amazon": "amazon",
    "deepseek": "deepseek", "cohere": "cohere", "ai21": "ai21", "openai": "openai", "qwen": "qwen",
    "writer": "writer", "moonshotai": "moonshotai", "moonshot": "moonshotai", "minimax": "minimax",
    "google": "google", "nvidia": "nvidia", "zai": "z-ai",
}

REGION_PREFIX = re.compile(r"^(us|eu|apac|global|jp|au|ca|us-gov|apne1|apse2)\.")
DATE_SUFFIX = re.compile(r"-(20\d{2}-?\d{2}-?\d{2}|\d{4})$")
SKIP = re.compile(r"(^ft:|container|computer-use|realtime|audio|tts|search-api|image|transcribe|moderation|-vision-preview$|guard|whisper|orpheus)")

# The same model under another name: a canonical slug wins (OpenRouter's names).
ALIASES = {
    "deepseek/deepseek-v3": "deepseek/deepseek-chat",
    "deepseek/deepseek-reasoner": "deepseek/deepseek-r1",
    "mistralai/mistral-large-latest": "mistralai/mistral-large",
    "mistralai/mistral-small-latest": "mistralai/mistral-small",
    "mistralai/mistral-medium-latest": "mistralai/mistral-medium",
    "moonshotai/kimi-k2-instruct": "moonshotai/kimi-k2",
    "moonshotai/kimi-k2-instruct-0905": "moonshotai/kimi-k2-0905",
    "openai/gpt-35-turbo": "openai/gpt-3.5-turbo",
}


def claude_name(name: str) -> str:
    """`claude-3-5-haiku-20241022` -> `claude-3.5-haiku`; `claude-sonnet-4-5` -> `claude-sonnet-4.5`."""
    name = re.sub(r"-\d{8}$", "", name)
    name = re.sub(r"-latest$", "", name)
    return re.sub(r"(?<=\d)-(\d)(?=$|-)", r".\1", name)


def hf_slug(model_id: str, strip_turbo: bool = False) -> str | None:
    """`meta-llama/Llama-3.3-70B-Instruct-Turbo` -> `meta-llama/llama-3.3-70b-instruct`."""
    if "/" not in model_id:
        return None
    org, name = model_id.split("/", 1)
    author = ORGS.get(org.lower())
    if author is None or "/" in name:
        return None
    name = name.lower()
    name = re.sub(r"^meta-llama-", "llama-", name)
    name = re.sub(r"-(fp8|fp4|fp8-dynamic)$", "", name)
    if strip_turbo:
        name = re.sub(r"-turbo$", "", name)
    if author == "deepseek":
        name = name.replace("deepseek-v3-0324", "deepseek-chat-v3-0324")
    if author == "google" and name.startswith("gemini"):
        return None  # Gemini is Google's own (AI Studio, Vertex); resellers' copies are left out
    return f"{author}/{name}"


def fireworks_slug(name: str) -> str | None:
    """`llama-v3p3-70b-instruct` -> `meta-llama/llama-3.3-70b-instruct`; `glm-4p6` -> `z-ai/glm-4.6`."""
    n = re.sub(r"(?<=\d)p(?=\d)", ".", name)
    n = re.sub(r"^llama-v(\d)", r"llama-\1", n)
    for prefix, author in (("llama", "meta-llama"), ("deepseek", "deepseek"), ("qwen", "qwen"), ("glm", "z-ai"),
                           ("kimi", "moonshotai"), ("gpt-oss", "openai"), ("mixtral", "mistralai"),
                           ("mistral", "mistralai"), ("minimax", "minimax"), ("gemma", "google")):
        if n.startswith(prefix):
            return f"{author}/{n}"
    return None


def bedrock_slug(model_id: str) -> str | None:
    """`anthropic.claude-3-5-haiku-20241022-v1:0` -> `anthropic/claude-3.5-haiku`."""
    if REGION_PREFIX.match(model_id) or "/" in model_id or "@" in model_id:
        return None
    vendor, _, name = model_id.partition(".")
    author = BEDROCK_VENDORS.get(vendor)
    if author is None or not name:
        return None
    # `-v1:0`, `-1:0`: the version of the Bedrock listing, not of the model (`claude-v2:1` keeps it).
    stripped = re.sub(r"-v?\d+:\d+(:\d+k)?$", "", name)
    name = stripped if re.search(r"\d", stripped) else re.sub(r":\d+$", "", name)
    if author == "deepseek" and not name.startswith("deepseek"):
        name = f"deepseek-{name}"
    if author == "anthropic":
        return "anthropic/" + claude_name(re.sub(r"(?<=\d)-v\d+$", "", name))
    if author == "meta-llama":
        # `llama3-3-70b-instruct` -> `llama-3.3-70b-instruct`
        name = re.sub(r"^llama(\d)-(\d)-", r"llama-\1.\2-", name)
        name = re.sub(r"^llama(\d)-", r"llama-\1-", name)
    if author == "amazon":
        # `nova-micro` is `amazon/nova-micro-v1` on OpenRouter.
        if re.match(r"^nova-(micro|lite|pro|premier)$", name):
            name += "-v1"
    return f"{author}/{name}"


def openai_name(name: str) -> str | None:
    if DATE_SUFFIX.search(name) or SKIP.search(name) or name.startswith("text-embedding-ada-002-v2"):
        return None
    return name


# ---- entries ---------------------------------------------------------------------------------


def micros(per_token) -> int | None:
    """USD per token -> integer micro-USD per million tokens (exact for the data's decimals)."""
    if per_token is None:
        return None
    try:
        v = Decimal(str(per_token)) * Decimal(1_000_000_000_000)
    except ArithmeticError:
        return None
    if v < 0:
        return None
    return int(v.to_integral_value())


def endpoint_for(key: str, v: dict) -> tuple[str, str, str] | None:
    """(slug, keyway provider, upstream model id) for one data-set entry, or None to skip it."""
    p = v.get("litellm_provider")
    bare = key.split("/", 1)[1] if "/" in key else key
    if p == "openai":
        n = openai_name(key)
        return (f"openai/{n}", "openai", n) if n else None
    if p == "azure":
        # `azure/eu/...`, `azure/global/...`: the same models at data-zone prices; the plain one stands.
        if key.count("/") != 1:
            return None
        n = openai_name(bare)
        if not n or not re.match(r"^(gpt|o\d|text-embedding|chatgpt)", n):
            return None
        slug = ALIASES.get(f"openai/{n}", f"openai/{n}")
        return (slug, "azure", n)
    if p == "anthropic":
        # Older Claude models exist on Anthropic's API only under dated ids
        # (`claude-sonnet-4-20250514`): the slug drops the date; an undated id wins when both exist.
        if "/" in key or key.endswith("-latest"):
            return None
        base = re.sub(r"-\d{8}$", "", key)
        return (f"anthropic/{claude_name(base)}", "anthropic", key)
    if p in ("bedrock", "bedrock_converse"):
        slug = bedrock_slug(key)
        return (slug, "amazon-bedrock", key) if slug else None
    if p == "vertex_ai-anthropic_models":
        if not bare.startswith("claude"):
            return None
        base = bare.split("@", 1)[0]
        return (f"anthropic/{claude_name(base)}", "google-vertex", bare)
    if p in ("vertex_ai-language-models", "vertex_ai-embedding-models", "vertex_ai"):
        if not re.match(r"^(gemini|text-embedding|text-multilingual-embedding)", bare) or "@" in bare:
            return None
        return (f"google/{bare}", "google-vertex", bare)
    if p == "gemini":
        if not key.startswith("gemini/") or not re.match(r"^(gemini|gemma|text-embedding)", bare):
            return None
        return (f"google/{bare}", "google-ai-studio", bare)
    if p == "mistral":
        if not key.startswith("mistral/") or bare.startswith(("zai-", "glm-", "deepseek-")):
            return None
        slug = f"mistralai/{bare}"
        return (ALIASES.get(slug, slug), "mistral", bare)
    if p == "deepseek":
        return (ALIASES.get(f"deepseek/{bare}", f"deepseek/{bare}"), "deepseek", bare)
    if p == "xai":
        return (f"x-ai/{bare}", "xai", bare)
    if p == "zai":
        return (f"z-ai/{bare}", "z-ai", bare)
    if p == "perplexity":
        if "/" in bare:
            return None
        return (f"perplexity/{bare}", "perplexity", bare)
    if p == "moonshot":
        return (ALIASES.get(f"moonshotai/{bare}", f"moonshotai/{bare}"), "moonshotai", bare)
    if p == "groq":
        slug = hf_slug(bare) or (f"meta-llama/{bare}" if bare.startswith("llama") else None)
        return (ALIASES.get(slug, slug), "groq", bare) if slug else None
    if p in ("deepinfra", "baseten", "together_ai"):
        slug = hf_slug(bare, strip_turbo=p == "together_ai")
        provider = {"deepinfra": "deepinfra", "baseten": "baseten", "together_ai": "together"}[p]
        return (ALIASES.get(slug, slug), provider, bare) if slug else None
    if p == "fireworks_ai":
        m = re.match(r"^accounts/fireworks/models/(.+)$", bare)
        if not m:
            return None
        slug = fireworks_slug(m.group(1))
        return (ALIASES.get(slug, slug), "fireworks", bare) if slug else None
    return None


# Provider order within a model: the model's maker first, then first-party clouds, then hosts.
PROVIDER_ORDER = ["openai", "azure", "anthropic", "amazon-bedrock", "google-vertex", "google-ai-studio", "mistral",
                  "deepseek", "xai", "z-ai", "moonshotai", "perplexity", "groq", "deepinfra", "together",
                  "fireworks", "baseten"]

AUTHOR_NAMES = {
    "openai": "OpenAI", "anthropic": "Anthropic", "google": "Google", "mistralai": "Mistral",
    "deepseek": "DeepSeek", "x-ai": "xAI", "z-ai": "Z.AI", "perplexity": "Perplexity",
    "moonshotai": "MoonshotAI", "meta-llama": "Meta", "amazon": "Amazon", "qwen": "Qwen",
    "minimax": "MiniMax", "nvidia": "NVIDIA", "cohere": "Cohere", "ai21": "AI21", "writer": "Writer",
}


def parameters(v: dict, embedding: bool) -> list[str]:
    if embedding:
        return []
    ps = []
    if v.get("supports_function_calling"):
        ps += ["tools", "tool_choice"]
    if v.get("supports_response_schema"):
        ps.append("response_format")
    ps += ["temperature", "top_p", "max_tokens", "stop"]
    if v.get("supports_reasoning"):
        ps.append("reasoning")
    return ps


def modalities(v: dict, embedding: bool) -> tuple[list[str], list[str]]:
    ins = ["text"]
    if v.get("supports_vision"):
        ins.append("image")
    if v.get("supports_pdf_input"):
        ins.append("file")
    if v.get("supports_audio_input"):
        ins.append("audio")
    outs = ["embeddings"] if embedding else ["text"]
    return ins, outs


def build(data: dict, supplement: dict) -> list[dict]:
    models: dict[str, dict] = {}
    for key, v in data.items():
        if not isinstance(v, dict) or v.get("mode") not in ("chat", "embedding"):
            continue
        r = endpoint_for(key, v)
        if r is None:
            continue
        slug, provider, model_id = r
        slug = slug.lower() if provider in ("deepinfra", "together", "baseten") else slug
        inp, out = micros(v.get("input_cost_per_token")), micros(v.get("output_cost_per_token"))
        if inp is None:
            continue
        embedding = v.get("mode") == "embedding"
        m = models.setdefault(slug, {"id": slug, "embedding": embedding, "flags": v, "endpoints": {}, "context": 0})
        ctx = v.get("max_input_tokens") or v.get("max_tokens") or 0
        if isinstance(ctx, int):
            m["context"] = max(m["context"], ctx)
        e = {"provider": provider, "model_id": model_id, "input": inp, "output": out or 0}
        cached = micros(v.get("cache_read_input_token_cost"))
        if cached is not None:
            e["cached_input"] = cached
        search = v.get("search_context_cost_per_query")
        if provider == "perplexity" and isinstance(search, dict) and search.get("search_context_size_low"):
            # Sonar's per-request search fee (low context), USD -> micro-USD.
            e["per_request"] = int(Decimal(str(search["search_context_size_low"])) * 1_000_000)
        if provider == "amazon-bedrock":
            e["default_region"] = "us-east-1"
        prev = m["endpoints"].get(provider)
        # Several ids of one provider for a slug (`claude-haiku-4-5` and `...@20251001`): prefer the
        # versioned Vertex id, else the shorter (undated) one.
        if prev is None or better(provider, model_id, prev["model_id"], slug):
            m["endpoints"][provider] = e
            if provider in ("openai", "anthropic", "google-ai-studio", "mistral", "xai", "deepseek"):
                m["flags"] = v
    for s in supplement.get("endpoints", []):
        m = models.setdefault(s["model"], {"id": s["model"], "embedding": s.get("embedding", False),
                                             "flags": s.get("flags", {}), "endpoints": {}, "context": 0})
        m["context"] = m["context"] or s.get("context_length", 0)
        e = {k: v for k, v in s.items() if k not in ("model", "embedding", "flags", "context_length")}
        m["endpoints"].setdefault(e["provider"], e)
    out = []
    for slug in sorted(models):
        m = models[slug]
        if not m["endpoints"]:
            continue
        author, _, name = slug.partition("/")
        ins, outs = modalities(m["flags"], m["embedding"])
        endpoints = sorted(m["endpoints"].values(), key=lambda e: PROVIDER_ORDER.index(e["provider"]))
        out.append({
            "id": slug,
            "name": f"{AUTHOR_NAMES.get(author, author)}: {name}",
            "context_length": m["context"],
            "created": supplement.get("created", {}).get(slug, 0),
            "input_modalities": ins,
            "output_modalities": outs,
            "supported_parameters": parameters(m["flags"], m["embedding"]),
            "endpoints": endpoints,
        })
    return out


def better(provider: str, new: str, old: str, slug: str) -> bool:
    # The id that is the slug's own name is the provider's canonical one (`deepseek-chat`).
    tail = slug.split("/", 1)[1]
    if (new == tail) != (old == tail):
        return new == tail
    if provider == "google-vertex" and ("@" in new) != ("@" in old):
        return "@" in new and "@default" not in new
    if provider == "mistral" and new.endswith("-latest") != old.endswith("-latest"):
        return new.endswith("-latest")
    if len(new) == len(old):
        return new > old  # dated ids of one name: the newest snapshot
    return len(new) < len(old)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--litellm-version", default=PINNED_VERSION)
    ap.add_argument("--source", help="an extracted model_prices_and_context_window json (skips pip; name its release with --litellm-version)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    if a.source:
        with open(a.source) as f:
            data, origin = json.load(f), os.path.basename(a.source)
    else:
        data, origin = fetch(a.litellm_version)
    with open(os.path.join(HERE, "supplement.json")) as f:
        supplement = json.load(f)
    models = build(data, supplement)
    doc = {
        "source": {
            "data": "LiteLLM model price map (model_prices_and_context_window_backup.json)",
            "package": f"litellm=={a.litellm_version} (PyPI)",
            "file": origin,
            "supplement": "scripts/catalog/supplement.json",
            "generator": "scripts/catalog/generate.py",
            "units": "prices in micro-USD per million tokens (input, output, cached_input); per_request in micro-USD",
        },
        "models": models,
    }
    with open(a.out, "w") as f:
        f.write("{\n")
        f.write(f'  "source": {json.dumps(doc["source"])},\n')
        f.write('  "models": [\n')
        f.write(",\n".join("    " + json.dumps(m, separators=(", ", ": ")) for m in models))
        f.write("\n  ]\n}\n")
    n_chat = sum(1 for m in models if "embeddings" not in m["output_modalities"])
    print(f"wrote {a.out}: {len(models)} models ({n_chat} chat, {len(models) - n_chat} embedding)")


if __name__ == "__main__":
    main()
