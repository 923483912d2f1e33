"""``bench train``: fine-tune a model from a training file, then record every round as a rung."""

from __future__ import annotations

import json

import click

from harness.choices import LeakagePolicy, OverlapPolicy, values
from harness.commands.options import json_option, leaderboard_option
from harness.errors import BenchError


@click.command()
@click.argument("config_path", metavar="CONFIG.toml")
@click.option("--goldset", "-g", default=None, help="Goldset whose train split becomes pairs (overrides the file).")
@click.option("--base-model", default=None, help="Model to start from (overrides the file).")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--learning-rate", "--lr", "learning_rate", type=float, default=None)
@click.option("--rounds", type=int, default=None, help="Hard-negative mining rounds after round 0.")
@click.option("--seed", type=int, default=None)
@click.option("--on-leakage", type=click.Choice(values(LeakagePolicy)), default=None, help="When training queries repeat evaluation queries: stop (default), drop those pairs, or allow (counted).")
@click.option("--on-overlap", type=click.Choice(values(OverlapPolicy)), default=None, help="Pairs about documents evaluation queries are judged on: keep (default; seen and unseen are scored apart) or drop.")
@click.option("--max-memory", type=click.FloatRange(min=0.1), default=None, metavar="GB", help="Memory a training step may use (default: the smaller of 4 GB and half the memory available); over it, InfoNCE trains with GradCache.")
@click.option("--models-dir", type=click.Path(file_okay=False), default=None, help="Where models are written (default: <leaderboard>/../models).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@leaderboard_option
@json_option
def train(config_path, goldset, base_model, epochs, batch_size, learning_rate, rounds, seed, on_leakage, on_overlap, max_memory, models_dir, cache_dir, leaderboard_dir, as_json):
    """Fine-tune (round 0, then mining rounds), then evaluate the base model and every round on the
    goldset's eval splits and its out-of-domain companions, one record per round."""
    from pathlib import Path

    from harness.cache import Cache
    from harness.config import read_toml, validate
    from harness.decide.views import outcomes_json, outcomes_table
    from harness.ladder.rungs import DenseRung
    from harness.ladder.runner import run_rungs
    from harness.records import Leaderboard
    from harness.registry import EncoderConfig
    from harness.training.job import is_main_process, plan_job, run_job
    from harness.training.schema import TrainConfig

    path = Path(config_path)
    base = path.resolve().parent  # paths in the file are relative to its folder
    data = read_toml(path)
    if goldset:
        goldset = _from_command_line(goldset, base)
    flags = {"goldset": goldset, "base_model": base_model, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed, "on_leakage": on_leakage, "on_overlap": on_overlap, "max_memory": max_memory}
    data.update({k: v for k, v in flags.items() if v is not None})
    if rounds is not None:
        data["mining"] = {**data.get("mining", {}), "rounds": rounds}
    config = validate(TrainConfig, data, str(path))
    _check_splits(config, base, f"{path}" + (" (goldset from -g)" if goldset else ""))
    models_root = Path(models_dir) if models_dir else Path(leaderboard_dir).resolve().parent / "models"
    job = plan_job(config, models_root=models_root, base=base)
    cache = Cache(cache_dir)
    model_dirs = run_job(job, cache)
    if not is_main_process():  # torchrun: the other processes only train
        return
    encoder = {"query_prompt": config.query_prompt, "document_prompt": config.document_prompt, "max_length": config.max_length}
    # the base model under the job's name, never a ladder's "baseline" (a leaderboard may hold both)
    rungs = [DenseRung(name=f"{config.name}-base", encoder=EncoderConfig(model=config.base_model, **encoder))]
    rungs += [DenseRung(name=f"{config.name}-r{i}", encoder=EncoderConfig(model=str(d), **encoder)) for i, d in enumerate(model_dirs)]
    outcomes = run_rungs(_targets(config, base), rungs, leaderboard=Leaderboard(leaderboard_dir), cache=cache) if config.goldset else []
    if as_json:
        click.echo(json.dumps({"models": [str(d) for d in model_dirs], "leakage": job.leakage.counts(config.on_leakage, config.on_overlap), "records": outcomes_json(outcomes)}, indent=1))
    else:
        click.echo(f"models: {', '.join(str(d) for d in model_dirs)}")
        if outcomes:
            outcomes_table(outcomes, title=f"{config.name}: base model and every round")


def _from_command_line(source: str, base):
    """``-g`` as the training file will read it: a path on the command line is relative to the working
    directory, so one that the file's folder would read differently becomes absolute (a name stays a
    name, keeping the job's fingerprint)."""
    from harness.data.resolve import find_goldset

    if source.startswith("mteb:"):
        return source
    here = find_goldset(source).resolve()
    try:
        same = find_goldset(source, base).resolve() == here
    except BenchError:
        same = False
    return source if same else str(here)


def _check_splits(config, base, where: str) -> None:
    """train_split and eval_split exist in the goldset, checked before anything loads or trains."""
    from harness.data.resolve import find_goldset, goldset_name, goldset_splits
    from harness.errors import ConfigError

    if not config.goldset or config.goldset.startswith("mteb:"):
        return
    folder = find_goldset(config.goldset, base)
    if problem := config.split_problem(goldset_name(str(folder)), goldset_splits(folder)):
        raise ConfigError(f"{where}: {problem}")


def _targets(config, base):
    """The goldset's eval splits, its own out-of-domain companions, and the config's ``ood`` goldsets."""
    from harness.ladder.plan import add_companion, plan_targets

    targets = plan_targets([config.goldset], base=base)
    for source in config.ood:
        add_companion(targets, source, base, targets[0].goldset.name)
    return targets
