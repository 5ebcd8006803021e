"""``forewarn backfill``: stored history re-scored in order, scores written back, values kept."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from core.detect import RobustZ, make_detector
from core.events import ScoredBatch
from core.store.embedded import EmbeddedStore
from forewarn.backfill import backfill
from forewarn.commands.backfill import register

T0 = 1_699_999_980.0
N = 2_000


def history(path: Path) -> ScoredBatch:
    """A device with a level shift at sample 1,500, stored with all scores 0."""
    rng = np.random.default_rng(5)
    values = rng.normal(20.0, 0.5, size=(N, 2))
    values[1500:, 1] += 15.0
    values[10, 0] = np.nan
    batch = ScoredBatch("acme", "hp-1", "heat_pump", ("current", "temp"),
                        (T0 + np.arange(N) * 60.0).astype(np.float64), values, np.zeros((N, 2)))
    with EmbeddedStore(path) as store:
        store.write(batch)
    return batch


@pytest.mark.parametrize("factory", [lambda: RobustZ(warmup=50), make_detector],
                         ids=["robust_z", "ensemble"])
def test_backfill_rescores_every_sample_and_keeps_the_values(tmp_path: Path, factory: object
                                                             ) -> None:
    sent = history(tmp_path / "fw.sqlite3")
    seen: list[tuple[float, int]] = []
    with EmbeddedStore(tmp_path / "fw.sqlite3") as store:
        count = backfill(store, factory, "acme", "hp-1", T0, T0 + N * 60.0,  # type: ignore[arg-type]
                         lambda fraction, done: seen.append((fraction, done)), chunk_s=7 * 3600.0)
        frame = store.read("acme", "hp-1", T0, T0 + N * 60.0)
        assert store.count_samples("acme") == N
    assert count == N
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1] == (1.0, N)
    np.testing.assert_array_equal(frame.values, sent.values)
    temp_scores = frame.scores[:, 1]
    assert temp_scores.max() > 0.0 and int(np.argmax(temp_scores)) >= 1500  # the shift


def test_a_plain_detector_scores_the_shift_high(tmp_path: Path) -> None:
    history(tmp_path / "fw.sqlite3")
    with EmbeddedStore(tmp_path / "fw.sqlite3") as store:
        backfill(store, lambda: RobustZ(warmup=50), "acme", "hp-1", T0, T0 + N * 60.0)
        scores = store.read("acme", "hp-1", T0, T0 + N * 60.0).scores[:, 1]
    assert scores[1500:1510].max() > 0.95 > 0.9 > scores[1000:1400].max()


def test_backfill_of_an_unknown_device_does_nothing(tmp_path: Path) -> None:
    history(tmp_path / "fw.sqlite3")
    with EmbeddedStore(tmp_path / "fw.sqlite3") as store:
        assert backfill(store, RobustZ, "acme", "nobody", T0, T0 + 60.0) == 0


def test_the_command_rescores_from_the_configured_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history(tmp_path / "fw.sqlite3")
    config = tmp_path / "forewarn.toml"
    config.write_text(
        f'tenant = "acme"\n[store]\nkind = "embedded"\npath = "{tmp_path}/fw.sqlite3"\n'
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    register(parser.add_subparsers())
    args = parser.parse_args(["--config", str(config), "backfill", "--device", "hp-1",
                              "--start", "2023-11-14T22:13:00Z", "--stop", str(T0 + N * 60.0),
                              "--quiet"])
    assert args.func(args) == 0
    assert "re-scored 2,000 samples of acme/hp-1" in capsys.readouterr().out
    with EmbeddedStore(tmp_path / "fw.sqlite3") as store:
        scores = store.read("acme", "hp-1", T0, T0 + N * 60.0).scores[:, 1]
    assert scores.max() > 0.0 and int(np.argmax(scores)) >= 1500
