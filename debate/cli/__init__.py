"""The `debate` command. Thin: parses options, then calls the parts that do the work.

Subcommands live in their own modules and are imported only when used, so that
`debate list` does not pay for loading torch or gradio. To add one, add a line to
COMMANDS (a `debate.registry.Registry`): "name": "module.path:attribute" (a click command
or group). This lazy command loading is also the one place where a first-party import may
sit inside a function: a command module imports its heavy parts (torch, gradio, judges)
in the command's body, so `debate --help`, which loads every command module, stays quick.
"""

from __future__ import annotations

import logging
import sys

import click

from debate.errors import DatabaseError, UserError
from debate.registry import Registry

COMMANDS: Registry[click.Command] = Registry("command", {
    "db": "debate.cli.db:db",
    "run": "debate.cli.run:run",
    "list": "debate.cli.inspect:list_experiments",
    "show": "debate.cli.inspect:show",
    "export": "debate.cli.export:export",
    "demo": "debate.cli.demo:demo",
    "judge": "debate.cli.judge:judge",
    "serve": "debate.cli.serve:serve",
    "users": "debate.cli.users:users",
    "campaigns": "debate.cli.campaigns:campaigns",
    "analyze": "debate.cli.analyze:analyze",
    "import": "debate.cli.imports:import_group",
    "pixels": "debate.cli.pixels:pixels",
    "datasets": "debate.cli.datasets:datasets",
    "probes": "debate.cli.probes:probes",
    "train": "debate.cli.train:train",
})


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return COMMANDS.get(name, "command") if name in COMMANDS else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="debate-platform")
def cli() -> None:
    """Experiments in AI safety via debate: run debates, judge them, analyse them."""


class _StderrLines(logging.Handler):
    """Warnings of the `debate` loggers (a server being retried, a lease renewal that
    failed) as lines on the current stderr, so a progress bar keeps them above it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{record.levelname.lower()}: {record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - as logging.Handler.handleError does
            self.handleError(record)


def _show_warnings() -> None:
    log = logging.getLogger("debate")
    if not any(isinstance(h, _StderrLines) for h in log.handlers):
        handler = _StderrLines(logging.WARNING)
        log.addHandler(handler)


def main(argv: list[str] | None = None) -> None:
    _show_warnings()
    try:
        cli.main(args=argv, prog_name="debate", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except DatabaseError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; stored work is kept and the run can be resumed", err=True)
        sys.exit(130)
