"""run(cache=...) refuses a store it could not open safely, before anything runs or is made."""

from __future__ import annotations

from pathlib import Path

import pytest

import dagexec as dx


@pytest.mark.parametrize(
    ("env", "why"),
    [
        (
            {"DAGEXEC_KEY": ""},
            "DAGEXEC_KEY is set but empty (what a secret that is not available expands to); "
            "set it to the signing key, or unset it",
        ),
        (
            {"DAGEXEC_REQUIRE_SIGNED": "1"},
            "signed files are required (DAGEXEC_REQUIRE_SIGNED) and no key is set: a cache store without a "
            "key neither signs nor checks its entries; set DAGEXEC_KEY or pass CacheStore(path, key=...)",
        ),
    ],
)
def test_a_cache_that_cannot_open_is_an_input_error_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], why: str
) -> None:
    marker = tmp_path / "ran"

    @dx.task(cache=False)
    def side() -> int:
        marker.touch()
        return 1

    with dx.Graph("g") as g:
        g.output(side(), name="out")
    plan = g.compile()
    monkeypatch.delenv("DAGEXEC_KEY", raising=False)
    monkeypatch.delenv("DAGEXEC_REQUIRE_SIGNED", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(dx.InputError) as e:
        plan.run(cache=tmp_path / "c", executor="serial")
    assert str(e.value) == f"cache: {why}"
    assert [str(p) for p in e.value.problems] == [f"cache: {why}"]
    assert not marker.exists()
    assert not (tmp_path / "c").exists()
