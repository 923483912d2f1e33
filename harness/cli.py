"""The ``bench`` command line: a thin layer over the Python API.

Only click and :mod:`harness.errors` are imported at start-up; each command imports what it needs,
so ``bench --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from harness.errors import BenchError

DEFAULT_GOLDSET = "demo"


class BenchGroup(click.Group):
    """Turns :class:`BenchError` into one ``error: ...`` line (exit 2, or 1 for run-time failures)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            if ctx.meta.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished records and cached embeddings are kept; run the same command to resume", err=True)
            ctx.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into one line
            if ctx.meta.get("debug"):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--progress/--no-progress", default=None, help="Progress: bars on a terminal, else a plain line at most every 30 s (default); --progress forces bars, --no-progress shows none.")
@click.version_option(package_name="tunebench")
@click.pass_context
def main(ctx: click.Context, debug: bool, progress: bool | None) -> None:
    """tunebench: will fine-tuning an embedding model improve your retrieval? Measure it."""
    ctx.meta["debug"] = debug or os.environ.get("TUNEBENCH_DEBUG") == "1"
    from harness import progress as progress_mod
    from harness.allocator import keep_freed_memory

    keep_freed_memory()  # this process is ours: encoding and training reuse freed blocks instead of faulting in fresh pages

    progress_mod.mode = ("bar" if sys.stderr.isatty() else "lines") if progress is None else ("bar" if progress else "off")
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        # Third-party chatter (hub retries, weight-loading bars) would drown our one-line errors.
        for noisy in ("bm25s", "sentence_transformers", "transformers", "huggingface_hub", "datasets", "mteb"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' own tqdm bars (sentence-transformers' "Computing widget examples"): ours are rich's or plain lines
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


from harness.commands import export_cmd, gate_cmd, goldset_cmd, leaderboard_cmd, report_cmd, run_cmd, train_cmd  # noqa: E402  (commands register on main)

main.add_command(run_cmd.run)
main.add_command(run_cmd.validate)
main.add_command(train_cmd.train)
main.add_command(leaderboard_cmd.leaderboard)
main.add_command(report_cmd.report)
main.add_command(goldset_cmd.goldset)
main.add_command(gate_cmd.gate)
main.add_command(export_cmd.export)

from harness.commands import drift_cmd, leakage_cmd, pairs_cmd, synthetic_cmd  # noqa: E402  (training data: builders and guards)

main.add_command(pairs_cmd.pairs)
pairs_cmd.pairs.add_command(synthetic_cmd.synthetic)
main.add_command(leakage_cmd.check_leakage)
main.add_command(drift_cmd.compare_queries)

if __name__ == "__main__":
    main()
