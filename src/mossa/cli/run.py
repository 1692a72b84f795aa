"""`mossa run`: config -> tasks, training, evaluation, extraction, analysis and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer


def run(
    profile: Annotated[str | None, typer.Option(help="Bundled profile (default: demo).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default: runs/<name>).")] = None,
    executor: Annotated[
        Literal["local", "ray"] | None,
        typer.Option(help="Training executor: local or ray (overrides config)."),
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Local worker processes.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override: key=value or section.key=value (repeatable; keys: mossa config run).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the job plan and estimates only.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Accept a run directory made with a different config: its out-of-date "
            "stages and all later ones are redone."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Dry run: print JSON.")] = False,
    redo: Annotated[
        str | None,
        typer.Option(
            help="Run this finished stage again (it resumes, rebuilding damaged or missing "
            "files), then every later stage: tasks, train, evaluate, extract, analyze or "
            "report."
        ),
    ] = None,
) -> None:
    """Run the whole MOSSA pipeline, skipping stages that are finished with the same inputs.

    Every config key, its default and meaning: `mossa config run [--profile NAME]`.
    """
    from mossa.config import executor_overrides, load_config

    overrides = [*(set_ or []), *executor_overrides(executor, workers, ray_address)]
    cfg = load_config(profile=profile, file=config, overrides=overrides)
    run_dir = out or Path("runs") / cfg.name
    if dry_run:
        _print_plan(run_dir, cfg, json_out, redo)
        return
    from mossa.pipeline.runner import run_pipeline
    from mossa.run_dir import RunDir

    run_pipeline(run_dir, cfg, force=force, redo=redo)
    typer.echo(f"report: {RunDir(run_dir).report}")


def _print_plan(run_dir: Path, cfg, json_out: bool, redo: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from mossa.pipeline.plan import make_plan
    from mossa.pipeline.runner import changed_stages, plan_stages

    plan = make_plan(cfg)
    plan["stages"] = {s.name: a for s, a in plan_stages(run_dir, cfg, redo=redo)}
    plan["needs_force"] = changed_stages(run_dir, cfg)
    if json_out:
        typer.echo(json.dumps(plan, indent=2))
        return
    console = Console()
    size, tasks, hours = plan["base_size"], plan["tasks"], plan["gpu_hours"]
    console.print(
        f"[bold]{cfg.name}[/bold]: base {plan['base']} ({size['params'] / 1e9:.2f}B params, "
        f"{size['layers']} layers, hidden {size['hidden']}); {tasks['total']} tasks "
        f"({tasks['seen']} seen; counted from {tasks['counted_from']}); run dir {run_dir}"
    )
    memory = plan["gpu_memory"]
    job_gb = f"{memory['estimate_gb']['total']:.1f}"
    if memory["fits"] is False:
        job_gb = f"[red]{job_gb} > {memory['budget_gb']:g}[/red]"
    table = Table("job", "steps (max)", "tokens", "GPU hours", "GPU memory GB")
    jobs = plan["jobs"]
    shown = jobs if len(jobs) <= 6 else [*jobs[:3], None, jobs[-1]]
    for j in shown:
        if j is None:
            table.add_row(f"... {len(jobs) - 4} more controls", "", "", "", "")
        else:
            table.add_row(
                j["name"], str(j["steps"]), f"{j['tokens']:.3g}", f"{j['gpu_hours']:.1f}", job_gb
            )
    console.print(table)
    _print_memory(console, cfg, memory)
    console.print(
        f"GPU hours (upper bound, before early stopping): SFT {hours['sft']:.1f}, controls "
        f"{hours['controls']:.1f}, extraction {hours['extraction']:.2f}, total {hours['total']:.1f}"
    )
    e = plan["extraction"]
    console.print(
        f"activation store: {plan['activation_disk_gb']:.2f} GB, {e['entries']} entries (base "
        f"and SFT {e['base_and_sft']}, own controls {e['own_controls']}, other tasks' controls "
        f"{e['cross_task_controls']}, control seeds {e['control_seeds']}, SFT snapshots "
        f"{e['sft_snapshots']})"
    )
    if plan["snapshots"]["steps"]:
        console.print(
            f"SFT snapshots: {plan['snapshots']['steps']} adapters, about "
            f"{plan['snapshots']['disk_gb'] * 1000:.1f} MB (training.snapshot_every)"
        )
    a = plan["assumptions"]
    console.print(
        f"[dim]assumes {a['sustained_fraction']:.0%} of {a['peak_tflops']:.0f} TFLOP/s bf16 "
        "per GPU, "
        f"{a['train_flops_per_token']} FLOPs per training token, {a['tokens_per_step']} tokens "
        f"per step; executor {a['executor']}, {a['gpus_per_job']} GPU per job[/dim]"
    )
    if a["sft_workers"] > 1:
        console.print(
            f"SFT data-parallel over {a['sft_workers']} Ray Train workers (executor.sft_workers),"
            " same global batch; its GPU memory above is for the whole batch on one worker"
        )
    console.print("stages: " + ", ".join(f"{k} ({v})" for k, v in plan["stages"].items()))
    if plan["needs_force"]:
        console.print(
            f"[yellow]{run_dir} was made with a different config (out of date: "
            f"{', '.join(plan['needs_force'])}); a real run needs --force[/yellow]"
        )


def _print_memory(console, cfg, memory: dict) -> None:
    """The memory estimate's parts, and the change that fits when a job does not."""
    gb = memory["estimate_gb"]
    c = cfg.compute
    console.print(
        f"GPU memory per training job: {gb['total']:.1f} GB (weights {gb['weights']:.1f}, LoRA "
        f"+ AdamW {gb['lora_and_optimizer']:.2f}, activations "
        f"{gb['saved_activations']:.1f}, logits {gb['logits']:.1f}, overhead "
        f"{gb['overhead']:.1f}) at batch "
        f"{cfg.training.batch_size} x {cfg.model.max_length} tokens, dtype "
        f"{'bfloat16' if c.dtype == 'auto' else c.dtype}, load_in {c.load_in or 'none'}, gradient "
        f"checkpointing {'on' if c.gradient_checkpointing else 'off'} (docs/training.md)"
    )
    if memory["fits"] is not False:
        return
    suggestion = memory["suggestion"]
    if suggestion is None:
        console.print(
            f"[red]training jobs do not fit compute.gpu_memory_gb={memory['budget_gb']:g}, "
            "and no change tried here makes them fit (a larger GPU, or a shorter "
            "model.max_length)[/red]"
        )
        return
    change = suggestion["change"]
    keys = {"batch_size": "training.batch_size"}
    edits = ", ".join(f"{keys.get(k, 'compute.' + k)}: {str(v).lower()}" for k, v in change.items())
    note = " (fewer examples per step: it changes the training)" if "batch_size" in change else ""
    console.print(
        f"[red]training jobs do not fit compute.gpu_memory_gb={memory['budget_gb']:g}[/red]; "
        f"with {edits} they need {suggestion['total_gb']:.1f} GB{note}"
    )


def register(app: typer.Typer) -> None:
    app.command("run")(run)
