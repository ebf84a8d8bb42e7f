"""The daemon's configuration: defaults, every error named by its key, environment references,
relative paths, the example files, and ``smpp-bridge config check``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from smpp_bridge.bridge.config import (
    BridgeConfig,
    ConfigError,
    PoolSettings,
    config_from_dict,
    load_config,
    parse_config,
    parse_listen,
    redact_url,
)
from smpp_bridge.cli import config as config_cli
from smpp_bridge.cli import main as cli_main
from smpp_bridge.errors import ConfigError as SharedConfigError
from smpp_bridge.pool import AccountConfig, PoolConfig
from smpp_bridge.simulator import ConfigError as SimulatorConfigError
from smpp_bridge.simulator import load_config as load_simulator_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.toml"
DOCKER = ROOT / "docker"

ACCOUNT = '[[accounts]]\nname = "main"\nsystem_id = "acme"\n'


def one_account(**extra: Any) -> dict[str, Any]:
    return {"accounts": [{"name": "main", "system_id": "acme", **extra}]}


def error_of(data: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, env=env or {})
    return info.value


# ------------------------------------------------------------------ defaults


def test_one_account_is_a_whole_config() -> None:
    config = parse_config(ACCOUNT, env={})
    assert [a.name for a in config.accounts] == ["main"]
    account = config.accounts[0]
    assert (account.host, account.port, account.bind_type) == ("127.0.0.1", 2775, "trx")
    assert config.queue.backend == "sqlite"
    assert config.queue.path == "smpp-bridge.db"  # no file, no directory: left as written
    # The store follows the queue.
    assert config.store.backend == "sqlite"
    assert config.store.path == config.queue.path
    assert config.store.prefix == config.queue.prefix
    assert config.daemon.batch == 100 and config.daemon.max_in_flight == 5000
    assert config.limits.max_parts == 10 and config.limits.max_batch == 100
    assert config.webhook is None
    assert config.metrics.address == ("127.0.0.1", 9400)
    assert config.log.json_lines is None


def test_pool_config_puts_accounts_and_pool_settings_together() -> None:
    config = parse_config(
        ACCOUNT + "[pool]\nretry_cap = 3.0\n[store]\ncorrelation_ttl = 60.0\n", env={}
    )
    pool = config.pool_config()
    assert isinstance(pool, PoolConfig)
    assert pool.accounts == config.accounts
    assert pool.retry_cap == 3.0
    assert pool.correlation_ttl == 60.0
    assert pool.unmatched_after == 120.0  # the daemon's default, whatever the pool's


def test_pool_settings_mirror_pool_config() -> None:
    """Every PoolConfig field is settable: in [pool], [[accounts]] or [store]."""
    pool_fields = set(PoolConfig.__struct_fields__)
    assert set(PoolSettings.__struct_fields__) == pool_fields - {"accounts", "correlation_ttl"}
    defaults = PoolConfig(accounts=())
    for name in PoolSettings.__struct_fields__:
        if name == "unmatched_after":
            continue  # the daemon's own default (120 s)
        assert getattr(PoolSettings(), name) == getattr(defaults, name), name


def test_accounts_are_the_pools_account_config() -> None:
    config = config_from_dict(
        one_account(host="smsc", port=2776, binds=3, window=50, tps=100.0, bind_type="tx"),
        env={},
    )
    assert config.accounts[0] == AccountConfig(
        name="main",
        system_id="acme",
        host="smsc",
        port=2776,
        binds=3,
        window=50,
        tps=100.0,
        bind_type="tx",
    )


def test_daemon_unknown_outcome_is_the_accounts_default() -> None:
    data = {
        "daemon": {"unknown_outcome": "report"},
        "accounts": [
            {"name": "a", "system_id": "a"},
            {"name": "b", "system_id": "b", "unknown_outcome": "retry"},
        ],
    }
    config = config_from_dict(data, env={})
    assert [a.unknown_outcome for a in config.accounts] == ["report", "retry"]


def test_store_sections_own_values_win() -> None:
    data = {
        **one_account(),
        "queue": {"backend": "redis", "url": "redis://q:6379/0", "prefix": "q"},
        "store": {"backend": "sqlite", "path": "/data/store.db"},
    }
    config = config_from_dict(data, env={})
    assert config.store.backend == "sqlite"
    assert config.store.path == "/data/store.db"
    memory = config_from_dict({**one_account(), "store": {"backend": "memory"}}, env={})
    assert memory.store.backend == "memory"


def test_redis_store_follows_a_redis_queue() -> None:
    data = {**one_account(), "queue": {"backend": "redis", "url": "redis://r:6379/1"}}
    config = config_from_dict(data, env={})
    assert (config.store.backend, config.store.url) == ("redis", "redis://r:6379/1")


def test_metrics_listen_and_log_settings() -> None:
    config = config_from_dict(
        {**one_account(), "metrics": {"listen": ""}, "log": {"level": "debug", "json": False}},
        env={},
    )
    assert config.metrics.address is None
    assert config.log.json_lines is False
    assert parse_listen("[::1]:9400") == ("::1", 9400)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)


def test_daemon_consumer_name() -> None:
    named = config_from_dict({**one_account(), "daemon": {"name": "bridge-7"}}, env={})
    assert named.daemon.consumer == "bridge-7"
    unnamed = config_from_dict(one_account(), env={})
    assert unnamed.daemon.consumer.endswith(f"-{os.getpid()}")


def test_webhook_section() -> None:
    config = config_from_dict(
        {**one_account(), "webhook": {"url": "https://hooks.example/e", "secret": "s3"}}, env={}
    )
    assert config.webhook is not None
    assert config.webhook.url == "https://hooks.example/e"
    assert config.webhook.timeout == 10.0


def test_checked_config_round_trips() -> None:
    config = load_config(EXAMPLE, env={})
    assert config_from_dict(msgspec.to_builtins(config), env={}) == config


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({**one_account(), "colour": "blue"}, "colour"),
        ({**one_account(), "daemon": {"batchh": 1}}, "daemon.batchh"),
        ({**one_account(), "queue": {"backed": "redis"}}, "queue.backed"),
        ({**one_account(), "store": {"ttl": 1}}, "store.ttl"),
        ({**one_account(), "limits": {"parts": 1}}, "limits.parts"),
        ({**one_account(), "pool": {"retry": 1}}, "pool.retry"),
        (one_account(pasword="x"), "accounts[0].pasword"),
        ({**one_account(), "webhook": {"url": "https://h/", "secrett": "x"}}, "webhook.secrett"),
        ({**one_account(), "metrics": {"port": 1}}, "metrics.port"),
        ({**one_account(), "log": {"format": "json"}}, "log.format"),
    ],
)
def test_unknown_keys_are_named_at_every_level(data: dict[str, Any], path: str) -> None:
    error = error_of(data)
    assert (error.path, error.reason) == (path, "unknown key")


def test_a_key_in_the_wrong_table_says_where_it_belongs() -> None:
    error = error_of({**one_account(), "pool": {"correlation_ttl": 60.0}})
    assert error.path == "pool.correlation_ttl"
    assert "[store]" in error.reason


def test_wrong_type_reads_like_the_toml_key() -> None:
    error = error_of(one_account(port="2775"))
    assert str(error) == "accounts[0].port: expected int, got str"
    assert (error.path, error.reason) == ("accounts[0].port", "expected int, got str")


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"accounts": 5}, "accounts", "expected array"),
        ({"accounts": [{"name": "main"}]}, "accounts[0].system_id", "missing required key"),
        ({**one_account(), "webhook": {"secret": "x"}}, "webhook.url", "missing required key"),
        ({**one_account(), "daemon": "fast"}, "daemon", "expected object"),
        ({**one_account(), "daemon": {"batch": 0}}, "daemon.batch", ">= 1"),
        ({**one_account(), "daemon": {"drain_timeout": -1.0}}, "daemon.drain_timeout", ">= 0"),
        ({**one_account(), "daemon": {"unknown_outcome": "drop"}}, "daemon.unknown_outcome", ""),
        ({**one_account(), "queue": {"backend": "kafka"}}, "queue.backend", "invalid value"),
        ({**one_account(), "queue": {"visibility_timeout": 0}}, "queue.visibility_timeout", ">"),
        ({**one_account(), "queue": {"events": ""}}, "queue.events", "length"),
        ({**one_account(), "store": {"backend": "mongo"}}, "store.backend", "invalid value"),
        ({**one_account(), "limits": {"max_parts": 0}}, "limits.max_parts", "1..255"),
        ({**one_account(), "limits": {"max_batch": 0}}, "limits.max_batch", "at least 1"),
        ({**one_account(), "pool": {"retry_cap": "x"}}, "pool.retry_cap", "expected float"),
        ({**one_account(), "log": {"level": "loud"}}, "log.level", "invalid value"),
        ({**one_account(), "log": {"json": "maybe"}}, "log.json", "maybe"),
        (one_account(bind_type="rxtx"), "accounts[0].bind_type", "invalid value"),
        (one_account(binds=0), "accounts[0]", "binds and window"),
        (one_account(tps=-5.0), "accounts[0]", "tps"),
        ({**one_account(), "webhook": {"url": "ftp://h/"}}, "webhook.url", "http"),
        ({**one_account(), "webhook": {"url": "https://h/", "timeout": 0}}, "webhook.timeout", ""),
    ],
)
def test_invalid_values_are_named_by_key(data: dict[str, Any], path: str, words: str) -> None:
    error = error_of(data)
    assert error.path == path
    assert words in error.reason


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({}, "accounts", "at least one"),
        ({"accounts": []}, "accounts", "at least one"),
        (one_account(name=""), "accounts[0].name", "empty"),
        (one_account(system_id="a-very-long-system-id"), "accounts[0].system_id", "15"),
        (one_account(password="too-long-password"), "accounts[0].password", "8"),
        (one_account(system_type="x" * 13), "accounts[0].system_type", "12"),
        (one_account(host=""), "accounts[0].host", "empty"),
        (one_account(port=0), "accounts[0].port", "1..65535"),
        (one_account(port=70000), "accounts[0].port", "1..65535"),
        (one_account(response_timeout=0.0), "accounts[0].response_timeout", "positive"),
        (one_account(enquire_link_interval=0.0), "accounts[0].enquire_link_interval", ""),
        (one_account(max_retries=-1), "accounts[0].max_retries", "negative"),
        (one_account(profile="klingon"), "accounts[0].profile", "klingon"),
        (one_account(message_id_mode="guess"), "accounts[0].message_id_mode", "hex-to-decimal"),
        ({**one_account(), "queue": {"backend": "redis"}}, "queue.url", "redis"),
        ({**one_account(), "queue": {"path": ""}}, "queue.path", "sqlite"),
        (
            {**one_account(), "queue": {"backend": "redis", "url": "http://r/"}},
            "queue.url",
            "redis://",
        ),
        ({**one_account(), "store": {"backend": "redis"}}, "store.url", "redis"),
        ({**one_account(), "queue": {"events": "requests"}}, "queue.events", "requests"),
        ({**one_account(), "daemon": {"max_in_flight": 10}}, "daemon.max_in_flight", "batch"),
        ({**one_account(), "pool": {"retry_cap": 0.1}}, "pool.retry_cap", "retry_base"),
        ({**one_account(), "pool": {"reconnect_cap": 0.1}}, "pool.reconnect_cap", "base"),
        ({**one_account(), "metrics": {"listen": "9400"}}, "metrics.listen", "host:port"),
        ({**one_account(), "metrics": {"listen": "::1:9400"}}, "metrics.listen", "brackets"),
        ({**one_account(), "metrics": {"listen": "h:99999"}}, "metrics.listen", "host:port"),
    ],
)
def test_what_types_do_not_say_is_checked(data: dict[str, Any], path: str, words: str) -> None:
    error = error_of(data)
    assert error.path == path
    assert words in error.reason


def test_duplicate_account_names() -> None:
    data = {
        "accounts": [
            {"name": "main", "system_id": "a"},
            {"name": "backup", "system_id": "b"},
            {"name": "main", "system_id": "c"},
        ]
    }
    error = error_of(data)
    assert error.path == "accounts[2].name"
    assert "duplicate" in error.reason and "accounts[0]" in error.reason


def test_bad_toml_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML in mine\.toml"):
        parse_config("[daemon\n", source="mine.toml", env={})


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nowhere.toml")


def test_one_config_error_for_the_whole_package() -> None:
    assert ConfigError is SharedConfigError is SimulatorConfigError
    assert issubclass(ConfigError, ValueError)


def test_simulator_errors_keep_their_wording(tmp_path: Path) -> None:
    """The simulator shares the helpers but keeps msgspec's own messages."""
    path = tmp_path / "sim.toml"
    path.write_text('[[accounts]]\nsystem_id = "a"\ntps = "fast"\n', encoding="utf-8")
    with pytest.raises(SimulatorConfigError) as info:
        load_simulator_config(path)
    assert info.value.path == "accounts[0].tps"
    assert info.value.reason.startswith("Expected `float | null`, got `str`")


# ------------------------------------------------------------------ environment


def test_env_references_are_replaced() -> None:
    env = {"SMSC_PASSWORD": "s3cret", "HOST": "smsc.example", "ZONE": "eu"}
    text = ACCOUNT + 'password = "${SMSC_PASSWORD}"\nhost = "${HOST}"\nsystem_type = "x-${ZONE}"\n'
    account = parse_config(text, env=env).accounts[0]
    assert (account.password, account.host, account.system_type) == (
        "s3cret",
        "smsc.example",
        "x-eu",
    )


def test_a_missing_variable_names_key_and_variable() -> None:
    error = error_of(one_account(password="${SMSC_PASSWORD}"))
    assert error.path == "accounts[0].password"
    assert "SMSC_PASSWORD" in error.reason and "not set" in error.reason


def test_references_in_arrays_have_their_index() -> None:
    error = error_of({**one_account(), "pool": {"opt_out_keywords": ["STOP", "${WORD}"]}})
    assert error.path == "pool.opt_out_keywords[1]"
    config = config_from_dict(
        {**one_account(), "pool": {"opt_out_keywords": ["STOP", "${WORD}"]}}, env={"WORD": "FIN"}
    )
    assert config.pool.opt_out_keywords == ("STOP", "FIN")


def test_defaults_and_escapes() -> None:
    data = one_account(password="${PW:-demo}", system_type="$${LITERAL}")
    account = config_from_dict(data, env={}).accounts[0]
    assert account.password == "demo"
    assert account.system_type == "${LITERAL}"
    # An empty variable takes the default too; a set one wins.
    assert config_from_dict(data, env={"PW": ""}).accounts[0].password == "demo"
    assert config_from_dict(data, env={"PW": "real"}).accounts[0].password == "real"
    # Without a default, an empty variable is an empty string.
    plain = config_from_dict(one_account(password="${PW}"), env={"PW": ""})
    assert plain.accounts[0].password == ""


@pytest.mark.parametrize(
    ("value", "words"), [("${1BAD}", "bad reference"), ("${OPEN", "unclosed"), ("${}", "bad")]
)
def test_malformed_references(value: str, words: str) -> None:
    error = error_of(one_account(password=value))
    assert error.path == "accounts[0].password"
    assert words in error.reason


def test_a_whole_reference_takes_the_type_of_its_key() -> None:
    env = {"PORT": "2776", "TLS": "true", "TPS": "12.5", "JSON": "false", "LEVEL": "debug"}
    data = {
        **one_account(port="${PORT}", tls="${TLS}", tps="${TPS}"),
        "log": {"json": "${JSON}", "level": "${LEVEL}"},
    }
    config = config_from_dict(data, env=env)
    account = config.accounts[0]
    assert (account.port, account.tls, account.tps) == (2776, True, 12.5)
    assert (config.log.json, config.log.level) == (False, "debug")
    # A string key keeps digits as a string.
    assert (
        config_from_dict(one_account(password="${PW}"), env={"PW": "1234"}).accounts[0].password
        == "1234"
    )


def test_a_reference_of_the_wrong_type_says_where_it_came_from() -> None:
    error = error_of(one_account(port="${PORT}"), env={"PORT": "twenty"})
    assert error.path == "accounts[0].port"
    assert error.reason == "expected int, got str (from ${PORT})"
    # Only a whole reference is typed: text around it keeps it a string.
    error = error_of(one_account(port="2${PORT}"), env={"PORT": "775"})
    assert error.reason == "expected int, got str"


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMPP_BRIDGE_TEST_PW", "from-env")
    config = config_from_dict(one_account(password="${SMPP_BRIDGE_TEST_PW}"))
    assert config.accounts[0].password == "from-env"


# ------------------------------------------------------------------ paths


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "bridge.toml"
    path.parent.mkdir()
    path.write_text(ACCOUNT + '[queue]\npath = "data/queue.db"\n', encoding="utf-8")
    config = load_config(path, env={})
    assert config.queue.path == str(path.parent / "data" / "queue.db")
    assert config.store.path == config.queue.path


def test_store_path_relative_and_absolute(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    elsewhere = tmp_path / "abs" / "q.db"
    path.write_text(
        ACCOUNT + f'[queue]\npath = "{elsewhere}"\n[store]\npath = "store.db"\n', encoding="utf-8"
    )
    config = load_config(path, env={})
    assert config.queue.path == str(elsewhere)
    assert config.store.path == str(tmp_path / "store.db")


def test_memory_databases_are_not_paths(tmp_path: Path) -> None:
    config = parse_config(ACCOUNT + '[queue]\npath = ":memory:"\n', env={}, base_dir=tmp_path)
    assert config.queue.path == ":memory:"


def test_load_config_from_a_relative_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bridge.toml").write_text(ACCOUNT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config("bridge.toml", env={})
    assert config.queue.path == str(tmp_path.resolve() / "smpp-bridge.db")


# ------------------------------------------------------------------ example files


def test_example_loads_and_points_at_the_demo_simulator() -> None:
    config = load_config(EXAMPLE, env={})
    sim = load_simulator_config(ROOT / "examples" / "demo-sim.toml")
    (account,) = config.accounts
    (sim_account,) = sim.accounts
    assert (account.host, account.port) == ("127.0.0.1", 2775)  # the simulator's default port
    assert account.system_id == sim_account.system_id
    assert account.password == sim_account.password  # the ${SMSC_PASSWORD:-...} default
    assert sim_account.max_binds is not None and account.binds <= sim_account.max_binds
    assert sim_account.window is not None and account.window <= sim_account.window
    assert config.queue.path == str(EXAMPLE.parent / "smpp-bridge.db")
    assert load_config(EXAMPLE, env={"SMSC_PASSWORD": "other"}).accounts[0].password == "other"


def test_example_shows_every_key() -> None:
    """Each key of every section appears in the example, set or commented out."""
    text = EXAMPLE.read_text(encoding="utf-8")
    info = msgspec.inspect.type_info(BridgeConfig)
    assert isinstance(info, msgspec.inspect.StructType)
    sections: list[tuple[str, type[msgspec.Struct]]] = [
        (field.name, field.type.cls)
        for field in info.fields
        if isinstance(field.type, msgspec.inspect.StructType)
    ]
    sections += [("accounts", AccountConfig)]
    from smpp_bridge.bridge.webhook import WebhookConfig

    sections += [("webhook", WebhookConfig)]
    for section, cls in sections:
        assert f"[{section}]" in text, section
        for key in cls.__struct_fields__:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key}"


def test_docker_config_loads_with_redis() -> None:
    config = load_config(DOCKER / "bridge.toml", env={"SMSC_PASSWORD": "pw"})
    assert config.queue.backend == "redis" and config.queue.url == "redis://redis:6379/0"
    assert config.store.backend == "redis"
    assert config.accounts[0].host == "simulator"
    assert config.metrics.address == ("0.0.0.0", 9400)
    with pytest.raises(ConfigError, match="SMSC_PASSWORD"):
        load_config(DOCKER / "bridge.toml", env={})


def test_docker_files_refer_to_what_exists() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'ENTRYPOINT ["smpp-bridge"]' in dockerfile and "\nUSER smpp-bridge" in dockerfile
    for name in ("pyproject.toml", "README.md", "smpp_bridge", "docker/bridge.toml"):
        assert name in dockerfile
        assert (ROOT / name).exists(), name
    compose = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    assert "/etc/smpp-bridge/demo-sim.toml" in compose and "demo-sim.toml" in dockerfile
    assert "./bridge.toml:/etc/smpp-bridge/bridge.toml" in compose


# ------------------------------------------------------------------ summary and CLI


def test_summary_has_no_secrets() -> None:
    data = {
        **one_account(password="pw-123"),
        "queue": {"backend": "redis", "url": "redis://user:redis-pw@r:6379/0?password=qs-pw"},
        "webhook": {"url": "https://u:hook-pw@hooks.example/e?token=tok-xyz", "secret": "sig-key"},
    }
    summary = config_from_dict(data, env={}).summary()
    text = json.dumps(summary)
    for secret in ("pw-123", "redis-pw", "qs-pw", "hook-pw", "tok-xyz", "sig-key"):
        assert secret not in text, secret
    assert summary["accounts"] == ["main"]
    assert summary["queue"]["url"] == "redis://user:***@r:6379/0?password=***"
    assert summary["webhook"] == {"url": "https://u:***@hooks.example/e?token=***", "signed": True}


def test_redact_url_leaves_plain_urls_alone() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    """``smpp-bridge`` with the config command registered (whether or not main lists it)."""
    if config_cli.register not in cli_main.REGISTRARS:
        monkeypatch.setattr(cli_main, "REGISTRARS", (*cli_main.REGISTRARS, config_cli.register))
    status = cli_main.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_config_check_prints_a_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSC_PASSWORD", "sekrit")
    status, out, err = run_cli(capsys, monkeypatch, "config", "check", str(EXAMPLE))
    assert status == 0, err
    result = json.loads(out)
    assert result["ok"] is True
    assert result["accounts"] == ["demo"]
    assert result["queue"]["backend"] == "sqlite"
    assert result["metrics"] == "127.0.0.1:9400"
    assert "sekrit" not in out


def test_config_check_names_the_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(ACCOUNT + 'port = "2775"\n', encoding="utf-8")
    status, out, err = run_cli(capsys, monkeypatch, "config", "check", str(path))
    assert status == 2 and out == ""
    assert json.loads(err) == {
        "error": "expected int, got str",
        "path": "accounts[0].port",
        "file": str(path),
    }


def test_config_check_errors_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.toml"
    status, _, err = run_cli(capsys, monkeypatch, "config", "check", str(missing))
    assert status == 2
    assert json.loads(err)["file"] == str(missing)
    assert "cannot read" in json.loads(err)["error"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n", encoding="utf-8")
    status, _, err = run_cli(capsys, monkeypatch, "config", "check", str(bad))
    assert status == 2
    assert "not valid TOML" in json.loads(err)["error"]
    assert "path" not in json.loads(err)


def test_config_without_a_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = run_cli(capsys, monkeypatch, "config")
    assert status == 2
    assert "usage" in json.loads(err)
