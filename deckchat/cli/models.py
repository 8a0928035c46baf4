"""`deckchat models ...` and `deckchat generate`: model registry, loading and generation."""

from __future__ import annotations

import click

from .base import emit, fail, main


@main.group("models")
def models_group() -> None:
    """The model registry: list presets, load one and report its size."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def models_list(as_json: bool) -> None:
    """List the registry's models and the generation presets."""
    from ..ml.models import PRESETS, list_models  # noqa: PLC0415 - keeps the CLI start fast

    models = list_models()
    text = "\n".join(f"{m['name']:<24} {m['hub_id']:<40} {m['kind']:<8} {m['dtype']}" for m in models)
    emit({"models": models, "presets": sorted(PRESETS)}, as_json, text)


_LOAD_OPTIONS = [
    click.option(
        "--load-format",
        type=click.Choice(["auto", "dummy"]),
        default="auto",
        help="dummy: the architecture's config with random weights.",
    ),
    click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)."),
    click.option("--dtype", default=None, help="float16, bfloat16, float32 (default: the model's on GPU)."),
]


def _load_options(fn):
    for option in reversed(_LOAD_OPTIONS):
        fn = option(fn)
    return fn


@models_group.command("info")
@click.argument("name")
@_load_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def models_info(name: str, load_format: str, device: str | None, dtype: str | None, as_json: bool) -> None:
    """Load NAME (registry name, hub id or folder) and report parameters, weight bytes and memory."""
    from ..ml.models import load_model  # noqa: PLC0415

    try:
        loaded = load_model(name, load_format=load_format, device=device, dtype=dtype)
    except (OSError, ValueError, ImportError) as exc:
        fail(f"cannot load {name}: {exc}")
    info = loaded.info()
    emit(info, as_json, "\n".join(f"{k}: {v}" for k, v in info.items()))


@main.command("generate")
@click.option("--model", "model_name", required=True, help="Registry name, hub id or model folder.")
@click.option("--preset", type=click.Choice(["sampling", "beams", "greedy"]), default="sampling")
@click.option("--max-new-tokens", type=int, default=None)
@_load_options
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def generate_cmd(
    model_name: str,
    preset: str,
    max_new_tokens: int | None,
    load_format: str,
    device: str | None,
    dtype: str | None,
    prompt: str,
    as_json: bool,
) -> None:
    """Generate an answer to PROMPT through the engine (streamed to the terminal without --json)."""
    from ..ml.engine import EngineError, GenerationRequest  # noqa: PLC0415
    from ..ml.local import LocalEngine  # noqa: PLC0415
    from ..ml.models import load_model  # noqa: PLC0415

    try:
        loaded = load_model(model_name, load_format=load_format, device=device, dtype=dtype)
    except (OSError, ValueError, ImportError) as exc:
        fail(f"cannot load {model_name}: {exc}")
    engine = LocalEngine(loaded, max_batch=1, cuda_graphs=False)
    try:
        stream = engine.submit(GenerationRequest(prompt=prompt, preset=preset, max_new_tokens=max_new_tokens))
        for delta in stream:
            if not as_json:
                click.echo(delta, nl=False)
        result = stream.result()
    except EngineError as exc:
        fail(str(exc))
    finally:
        engine.close()
    if as_json:
        emit(
            {
                "model": loaded.name,
                "preset": preset,
                "text": result.text,
                "finish_reason": result.finish_reason,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "trimmed_tokens": result.trimmed_tokens,
                "ttft_s": result.ttft_s,
                "seconds": result.total_s,
            },
            True,
        )
    else:
        click.echo()
