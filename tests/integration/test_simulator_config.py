"""The simulator's configuration: TOML files, Python objects, and the errors naming bad keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from smpp_bridge.simulator import (
    Account,
    ConfigError,
    Exponential,
    Faults,
    Fixed,
    MessageIds,
    Normal,
    Outcome,
    QueueFullBursts,
    Receipts,
    Simulator,
    SimulatorConfig,
    SubmitBehaviour,
    Uniform,
    config_from_dict,
    load_config,
    validate,
)
from smpp_bridge.simulator.behaviours import (
    MessageIdFactory,
    OutcomePicker,
    TokenBucket,
    make_sampler,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim.toml"


def test_example_file_loads_and_runs() -> None:
    config = load_config(EXAMPLE)
    assert config.seed == 42
    assert [a.system_id for a in config.accounts] == ["esme", "reports"]
    assert config.submit.latency == Uniform(low=0.005, high=0.02)
    assert config.submit.message_id.format == "hex"
    assert config.receipts.delay == Exponential(mean=2.0, max=30.0)
    assert [o.stat for o in config.receipts.outcomes] == [
        "DELIVRD",
        "UNDELIV",
        "EXPIRED",
        "REJECTD",
        "DELETED",
    ]
    Simulator(config)


def test_toml_and_python_objects_are_the_same_config(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        """
        seed = 3
        [[accounts]]
        system_id = "esme"
        password = "pw"
        tps = 10
        [submit]
        latency = 0.25
        [receipts]
        delay = { dist = "normal", mean = 1.0, stddev = 0.5 }
        outcomes = [{ stat = "UNDELIV", err = 5 }]
        [faults]
        queue_full = { every = 100, length = 10 }
        """
    )
    built = SimulatorConfig(
        seed=3,
        accounts=(Account(system_id="esme", password="pw", tps=10),),
        submit=SubmitBehaviour(latency=0.25),
        receipts=Receipts(
            delay=Normal(mean=1.0, stddev=0.5), outcomes=(Outcome(stat="UNDELIV", err=5),)
        ),
        faults=Faults(queue_full=QueueFullBursts(every=100, length=10)),
    )
    assert load_config(path) == built


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"faults": {"drop_response_probabilty": 0.5}}, "faults.drop_response_probabilty"),
        ({"accounts": [{"system_id": "a", "pasword": "x"}]}, "accounts[0].pasword"),
        ({"receipts": {"delay": {"dist": "uniform", "low": 0, "hi": 1}}}, "receipts.delay.hi"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_unknown_keys_are_named_with_their_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.path == path
    assert info.value.reason == "unknown key"


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"accounts": [{"system_id": "a", "tps": -1}]}, "accounts[0]", "tps"),
        ({"accounts": [{"system_id": "a", "window_status": "ESME_RBOGUS"}]}, "accounts[0]", "name"),
        ({"accounts": [{"system_id": "a"}, {"system_id": "a"}]}, "", "duplicate"),
        ({"server": {"bind_limit_status": "ESME_ROK"}}, "server", "bind_limit_status"),
        ({"submit": {"latency": {"dist": "gamma"}}}, "submit.latency.dist", "Invalid"),
        ({"submit": {"latency": -1}}, "submit", "latency"),
        ({"receipts": {"outcomes": [{"stat": "LOST"}]}}, "receipts.outcomes[0].stat", "Invalid"),
        ({"receipts": {"outcomes": []}}, "receipts", "outcomes"),
        ({"faults": {"drop_response_probability": 2}}, "faults", "drop_response_probability"),
        ({"faults": {"congestion_state": 100}}, "faults", "congestion_state"),
        ({"mo": {"rate": "fast"}}, "mo.rate", "Expected"),
        ({"seed": "x"}, "seed", "Expected"),
    ],
)
def test_invalid_values_are_refused(data: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.path == path
    assert words in info.value.reason


def test_python_objects_are_checked_as_strictly_as_files() -> None:
    # Constructing in Python runs the value checks at once...
    with pytest.raises(ValueError, match="max_binds"):
        Account(system_id="a", max_binds=0)
    with pytest.raises(TypeError):
        Account(system_id="a", tps="10")  # type: ignore[arg-type]
    # ...and validate() (which Simulator runs) catches the wrong types they do not touch.
    wrong = SimulatorConfig(receipts=Receipts(include_text="yes"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        validate(wrong)
    assert info.value.path == "receipts.include_text"
    with pytest.raises(ConfigError):
        Simulator(wrong)


def test_mo_texts_must_be_encodable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Simulator(config_from_dict({"mo": {"texts": ["ok", "Жук"], "encoding": "gsm7"}}))
    assert info.value.path == "mo.texts[1]"


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_config_round_trips_through_builtins() -> None:
    config = load_config(EXAMPLE)
    assert validate(config) == config
    assert msgspec.convert(msgspec.to_builtins(config), SimulatorConfig) == config


# ------------------------------------------------------------------ compiled behaviours


def test_samplers_follow_their_distributions() -> None:
    import random

    rng = random.Random(1)
    assert make_sampler(0.5, rng)() == 0.5
    assert make_sampler(Fixed(value=2.0), rng)() == 2.0
    uniform = make_sampler(Uniform(low=1.0, high=2.0), rng)
    assert all(1.0 <= uniform() <= 2.0 for _ in range(1000))
    capped = make_sampler(Exponential(mean=1.0, max=1.5), rng)
    values = [capped() for _ in range(2000)]
    assert max(values) == 1.5 and min(values) >= 0
    normal = make_sampler(Normal(mean=0.1, stddev=1.0), rng)
    assert min(normal() for _ in range(1000)) == 0.0  # clipped, never negative


def test_message_ids_render_one_number_two_ways() -> None:
    import random

    factory = MessageIdFactory(
        MessageIds(format="hex", receipt_format="decimal", width=8, uppercase=True, start=255),
        random.Random(1),
    )
    number = factory.next()
    assert factory.for_response(number) == "000000FF"
    assert factory.for_receipt(number) == "00000255"
    uuids = MessageIdFactory(MessageIds(format="uuid", receipt_format="decimal"), random.Random(2))
    n = uuids.next()
    assert int(uuids.for_response(n).replace("-", ""), 16) == int(uuids.for_receipt(n))


def test_outcome_weights_are_respected() -> None:
    import random

    picker = OutcomePicker(
        (
            Outcome(stat="DELIVRD", weight=8),
            Outcome(stat="UNDELIV", weight=2),
            Outcome(stat="EXPIRED", weight=0),
        ),
        random.Random(5),
    )
    counts: dict[str, int] = {}
    for _ in range(10_000):
        stat = picker.pick().stat
        counts[stat] = counts.get(stat, 0) + 1
    assert set(counts) == {"DELIVRD", "UNDELIV"}
    assert 7_600 < counts["DELIVRD"] < 8_400


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=3)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.125) is False  # half a token
    assert bucket.take(100.25) is True
    assert [bucket.take(200.0) for _ in range(4)] == [True, True, True, False]  # capped at burst
