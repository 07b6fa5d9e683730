"""The container files agree with the code (Docker cannot run here, so this is the check).

* every compose service that runs the Forewarn image calls a real ``forewarn`` command with
  real options (parsed by the CLI's own click command, nothing is run); the Dask services
  call real ``dask scheduler`` / ``dask worker`` options;
* every ``FOREWARN_*`` variable (compose and Dockerfile) names a real setting, and together
  they validate as :class:`~service.config.Settings`;
* the Dockerfile's ``ENTRYPOINT`` is the installed console script, its ``CMD`` a real command,
  its ``HEALTHCHECK`` a route the app serves, and its ``COPY`` sources exist.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from pydantic import BaseModel

from service.api.app import create_app
from service.cli import app as cli_app
from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _forewarn_command(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``args`` as the ``forewarn`` CLI would; returns (command path, parameters)."""
    root = typer.main.get_command(cli_app)
    cmd: Any = root
    ctx: Any = root.context_class(root, info_name="forewarn")
    name, rest = "forewarn", list(args)
    while hasattr(cmd, "commands"):
        assert rest, f"{args}: a command group needs a sub-command"
        name, *rest = rest
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"{args}: 'forewarn' has no command '{name}'"
        if hasattr(sub, "commands"):
            ctx = sub.context_class(sub, info_name=name, parent=ctx)
        cmd = sub
    leaf = cmd.make_context(name, rest, parent=ctx)  # raises on unknown options or bad values
    return str(leaf.command_path), dict(leaf.params)


def _substitute(value: str) -> str:
    """Compose interpolation with placeholder values: ``${X:-default}`` → default, else x."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?(?::\?[^}]*)?\}",
                  lambda m: m.group(2) if m.group(2) is not None else "secret", value)


def _setting_exists(name: str) -> bool:
    parts = name.removeprefix("FOREWARN_").lower().split("__")
    model: Any = Settings
    for part in parts:
        fields = model.model_fields
        if part not in fields:
            return False
        model = fields[part].annotation
    return True


def _forewarn_services() -> list[str]:
    return [n for n, s in SERVICES.items()
            if s.get("image", "").startswith("forewarn") and "entrypoint" not in s]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV (.+?)(?<!\\)$", DOCKERFILE, flags=re.M | re.S):
        for token in shlex.split(block.replace("\\\n", " ")):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _instruction(name: str) -> str:
    m = re.search(rf"^{name} (.+?)(?<!\\)$", DOCKERFILE, flags=re.M | re.S)
    assert m, f"the Dockerfile has no {name}"
    return m.group(1).replace("\\\n", " ")


def test_compose_has_the_multi_machine_shape() -> None:
    assert {"postgres", "api", "scheduler", "dask-scheduler", "dask-worker"} <= set(SERVICES)
    assert SERVICES["scheduler"]["deploy"]["replicas"] == 1
    assert SERVICES["api"]["deploy"]["replicas"] >= 2
    env = SERVICES["api"]["environment"]
    assert env["FOREWARN_FORECAST__ENGINE"] == "dask"
    assert env["FOREWARN_FORECAST__DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert env["FOREWARN_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert SERVICES["scheduler"]["environment"] == env  # one shared block


@pytest.mark.parametrize("service", _forewarn_services())
def test_compose_commands_are_real_forewarn_commands(service: str) -> None:
    path, params = _forewarn_command(SERVICES[service]["command"])
    expected = {"api": "forewarn serve", "scheduler": "forewarn scheduler",
                "migrate": "forewarn db upgrade"}
    assert path == expected[service]
    if service == "api":
        assert params["host"] == "0.0.0.0" and params["port"] == 8000
        assert not params["with_scheduler"]  # the scheduler runs in its own service


@pytest.mark.parametrize("service", ["dask-scheduler", "dask-worker"])
def test_dask_services_use_real_dask_commands(service: str) -> None:
    spec = SERVICES[service]
    program, sub = spec["entrypoint"]
    assert program == "dask"
    commands = {ep.name: ep for ep in entry_points(group="dask_cli")}
    assert sub in commands, f"'dask {sub}' is not installed"
    command = commands[sub].load()
    ctx = command.make_context(f"dask {sub}", list(spec["command"]))  # raises on bad options
    if sub == "worker":
        assert ctx.params["scheduler"] == "tcp://dask-scheduler:8786"
        assert ctx.params["nthreads"] == 1  # fits hold the GIL


def test_bad_commands_would_be_caught() -> None:
    with pytest.raises(AssertionError):
        _forewarn_command(["servex"])
    with pytest.raises(Exception, match="No such option"):
        _forewarn_command(["serve", "--bogus"])
    assert not _setting_exists("FOREWARN_FORECAST__ENGIN")


def test_every_forewarn_variable_is_a_setting_and_validates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env: dict[str, str] = {**_dockerfile_env()}
    for spec in SERVICES.values():
        for key, value in (spec.get("environment") or {}).items():
            if key.startswith("FOREWARN_"):
                env[key] = _substitute(str(value))
    names = sorted(k for k in env if k.startswith("FOREWARN_"))
    assert len(names) >= 8
    unknown = [n for n in names if not _setting_exists(n)]
    assert not unknown, f"not settings: {unknown}"
    for key, value in env.items():
        if key.startswith("FOREWARN_"):
            monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.forecast.engine == "dask"
    assert settings.channels.webhook.secrets == []
    assert str(settings.channels.file_dir) == "/var/lib/forewarn/outbox"
    assert isinstance(settings.api, BaseModel) and settings.api.rate_limit_per_minute == 600


def test_dockerfile_entrypoint_cmd_healthcheck_and_sources() -> None:
    assert DOCKERFILE.count("FROM ") >= 2, "multi-stage"
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, flags=re.M), "non-root"
    entrypoint = json.loads(_instruction("ENTRYPOINT"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["forewarn"] and scripts["forewarn"] == "service.cli:app"
    path, params = _forewarn_command(json.loads(_instruction("CMD")))
    assert path == "forewarn serve" and params["host"] == "0.0.0.0"
    health = _instruction("HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", health)
    assert url and int(url.group(1)) == params["port"]
    paths = create_app(Settings(_env_file=None, database_url="sqlite://"),
                       migrate=False).openapi()["paths"]
    assert url.group(2) == "/healthz" and "get" in paths[url.group(2)]
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, flags=re.M):
        for item in src.split():
            assert (ROOT / item).exists(), f"COPY source {item} is missing"
    assert "prophet.Prophet(" in DOCKERFILE and ".fit(" in DOCKERFILE  # Stan model check
