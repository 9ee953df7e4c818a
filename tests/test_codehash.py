"""``code_digest`` / ``code_parts``: code hashed by value for cache keys (DESIGN §7)."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
import pytest

import dagexec as dx
from dagexec.plan.codehash import _token, code_digest, code_parts

Loader = Callable[..., list[ModuleType]]


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Loader]:
    """Write modules to ``tmp_path/<folder>`` and import them fresh; forget them afterwards.

    ``load("v1", {"helpers": "...", "caller": "..."}, "caller")`` returns ``[caller]``.
    Each version lives in its own folder, so no stale bytecode is ever reused.
    """
    names: set[str] = set()

    def _load(folder: str, sources: dict[str, str], *imports: str) -> list[ModuleType]:
        where = tmp_path / folder
        where.mkdir(parents=True)
        for name, source in sources.items():
            (where / f"{name}.py").write_text(textwrap.dedent(source))
            sys.modules.pop(name, None)
            names.add(name)
        sys.path.insert(0, str(where))
        importlib.invalidate_caches()
        try:
            return [importlib.import_module(name) for name in imports]
        finally:
            sys.path.remove(str(where))

    yield _load
    for name in names:
        sys.modules.pop(name, None)


def _changed(old: Callable[..., Any], new: Callable[..., Any]) -> set[str]:
    """Names whose own digest differs (or that appear or vanish) between two versions."""
    return {name for name, _ in set(code_parts(old)) ^ set(code_parts(new))}


def _names(fn: Callable[..., Any]) -> list[str]:
    return [name for name, _ in code_parts(fn)]


# -- one function -------------------------------------------------------------------------


def test_the_same_function_gives_the_same_digest_every_time(load: Loader) -> None:
    source = "def double(x):\n    return 2 * x\n"
    (a,) = load("a", {"m": source}, "m")
    (b,) = load("b", {"m": source}, "m")
    assert a.double is not b.double
    assert code_digest(a.double) == code_digest(a.double) == code_digest(b.double)
    assert code_parts(a.double) == code_parts(b.double) == (("m:double", code_parts(a.double)[0][1]),)
    assert len(code_digest(a.double)) == 64
    # memoized: the second call returns the very same string
    assert code_digest(a.double) is code_digest(a.double)


def test_a_changed_body_changes_the_digest(load: Loader) -> None:
    (a,) = load("a", {"m": "def f(x):\n    return x + 1\n"}, "m")
    (b,) = load("b", {"m": "def f(x):\n    return x + 2\n"}, "m")
    assert code_digest(a.f) != code_digest(b.f)
    assert _changed(a.f, b.f) == {"m:f"}


def test_identical_bodies_with_different_closures_differ() -> None:
    def make(n: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            return x + n

        return add

    assert code_digest(make(3)) != code_digest(make(4))
    assert code_digest(make(3)) == code_digest(make(3))


def test_a_changed_lambda_default_argument_is_seen(load: Loader) -> None:
    (a,) = load("a", {"m": "def f(x, g=lambda y: y + 1):\n    return g(x)\n"}, "m")
    (b,) = load("b", {"m": "def f(x, g=lambda y: y + 2):\n    return g(x)\n"}, "m")
    (c,) = load("c", {"m": "def f(x, g=lambda y: y + 1):\n    return g(x)\n"}, "m")
    assert code_digest(a.f) != code_digest(b.f)
    assert code_digest(a.f) == code_digest(c.f)
    assert _names(a.f) == ["m:<lambda>", "m:f"]
    assert _changed(a.f, b.f) == {"m:<lambda>"}


def test_a_changed_keyword_only_default_is_seen(load: Loader) -> None:
    (a,) = load("a", {"m": "def f(x, *, k=1):\n    return x * k\n"}, "m")
    (b,) = load("b", {"m": "def f(x, *, k=2):\n    return x * k\n"}, "m")
    assert code_digest(a.f) != code_digest(b.f)


def test_a_changed_global_constant_is_seen(load: Loader) -> None:
    body = "def f(x):\n    return x * RATE\n"
    (a,) = load("a", {"m": "RATE = 2\n" + body}, "m")
    (b,) = load("b", {"m": "RATE = 3\n" + body}, "m")
    (c,) = load("c", {"m": "RATE = 2\nUNUSED = 5\n" + body}, "m")
    assert code_digest(a.f) != code_digest(b.f)
    assert code_digest(a.f) == code_digest(c.f)  # a global the code does not read does not count
    assert _changed(a.f, b.f) == {"m:f"}


def test_a_global_read_only_in_a_comprehension_is_seen(load: Loader) -> None:
    body = "def f(xs):\n    return [x * RATE for x in xs]\n"
    (a,) = load("a", {"m": "RATE = 2\n" + body}, "m")
    (b,) = load("b", {"m": "RATE = 3\n" + body}, "m")
    assert code_digest(a.f) != code_digest(b.f)


def test_the_name_of_a_function_is_not_part_of_its_own_digest(load: Loader) -> None:
    (m,) = load("a", {"m": "def f(x):\n    return x + 1\n\ndef g(x):\n    return x + 1\n"}, "m")
    assert code_parts(m.f)[0][1] == code_parts(m.g)[0][1]
    assert code_digest(m.f) == code_digest(m.g)


# -- what a function reaches --------------------------------------------------------------

CALLER_FROM = """
from helpers import scale, shift

def run(x):
    return shift(scale(x))
"""

CALLER_MODULE = """
import helpers

def run(x):
    return helpers.shift(helpers.scale(x))
"""

HELPERS = """
def scale(x):
    return x * {factor}

def shift(x):
    return x + 1
"""


@pytest.mark.parametrize("caller", [CALLER_FROM, CALLER_MODULE], ids=["from-import", "module-attribute"])
def test_a_changed_helper_invalidates_its_caller_and_parts_name_only_the_helper(
    load: Loader, caller: str
) -> None:
    (old,) = load("v1", {"helpers": HELPERS.format(factor=2), "caller": caller}, "caller")
    (same,) = load("v2", {"helpers": HELPERS.format(factor=2), "caller": caller}, "caller")
    (new,) = load("v3", {"helpers": HELPERS.format(factor=3), "caller": caller}, "caller")
    assert _names(old.run) == ["caller:run", "helpers:scale", "helpers:shift"]
    assert code_digest(old.run) == code_digest(same.run)
    assert code_digest(old.run) != code_digest(new.run)
    assert _changed(old.run, new.run) == {"helpers:scale"}


def test_swapping_which_helper_a_list_slot_holds_changes_the_digest(load: Loader) -> None:
    source = """
    def a(x):
        return x + 1

    def b(x):
        return x * 2

    STEPS = [{steps}]

    def run(x):
        for step in STEPS:
            x = step(x)
        return x
    """
    (ab,) = load("ab", {"m": source.format(steps="a, b")}, "m")
    (ba,) = load("ba", {"m": source.format(steps="b, a")}, "m")
    assert ab.run(1) != ba.run(1)
    assert code_parts(ab.run) == code_parts(ba.run)  # the same functions, each unchanged
    assert code_digest(ab.run) != code_digest(ba.run)


def test_recursion_and_mutual_recursion_terminate_and_are_stable(load: Loader) -> None:
    source = """
    def fact(n):
        return 1 if n < 2 else n * fact(n - 1)

    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else {odd}
    """
    (a,) = load("a", {"m": source.format(odd="is_even(n - 1)")}, "m")
    (b,) = load("b", {"m": source.format(odd="is_even(n - 1)")}, "m")
    (c,) = load("c", {"m": source.format(odd="not is_odd(n - 1)")}, "m")
    assert _names(a.fact) == ["m:fact"]
    assert _names(a.is_even) == ["m:is_even", "m:is_odd"]
    assert code_digest(a.fact) == code_digest(b.fact)
    assert code_digest(a.is_even) == code_digest(b.is_even)
    assert code_digest(a.is_odd) == code_digest(b.is_odd)
    assert code_digest(a.is_even) != code_digest(a.is_odd)  # same set, another starting point
    assert code_digest(a.is_even) != code_digest(c.is_even)
    assert _changed(a.is_even, c.is_even) == {"m:is_odd"}


def test_methods_of_a_user_class_the_function_refers_to_are_reached(load: Loader) -> None:
    source = """
    class Scaler:
        OFFSET = 1

        def __init__(self, factor):
            self.factor = factor

        def apply(self, x):
            return x * self.factor + {offset}

        @staticmethod
        def unit():
            return 1

        @property
        def double(self):
            return self.factor * 2

    def run(x):
        return Scaler(2).apply(x)
    """
    (a,) = load("a", {"m": source.format(offset="self.OFFSET")}, "m")
    (b,) = load("b", {"m": source.format(offset="self.OFFSET + 1")}, "m")
    assert _names(a.run) == [
        "m:Scaler",
        "m:Scaler.__init__",
        "m:Scaler.apply",
        "m:Scaler.double",
        "m:Scaler.unit",
        "m:run",
    ]
    assert code_digest(a.run) != code_digest(b.run)
    assert _changed(a.run, b.run) == {"m:Scaler.apply"}


def test_a_changed_class_attribute_is_seen(load: Loader) -> None:
    source = "class Config:\n    RATE = {rate}\n\ndef run(x):\n    return x * Config.RATE\n"
    (a,) = load("a", {"m": source.format(rate=2)}, "m")
    (b,) = load("b", {"m": source.format(rate=3)}, "m")
    assert code_digest(a.run) != code_digest(b.run)
    assert _changed(a.run, b.run) == {"m:Config"}


def test_a_callable_object_is_hashed_by_its_class_and_state(load: Loader) -> None:
    source = """
    class Add:
        def __init__(self, n):
            self.n = n

        def __call__(self, x):
            return x + self.n
    """
    (m,) = load("a", {"m": source}, "m")
    assert code_digest(m.Add(1)) == code_digest(m.Add(1))
    assert code_digest(m.Add(1)) != code_digest(m.Add(2))
    assert _names(m.Add(1)) == ["m:Add", "m:Add <Add>", "m:Add.__call__", "m:Add.__init__"]


# -- wrappers -----------------------------------------------------------------------------


def test_a_task_and_a_wrapper_hash_as_their_raw_function() -> None:
    def add(x: int) -> int:
        return x + 1

    @functools.wraps(add)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return add(*args, **kwargs)

    assert code_digest(dx.task(add)) == code_digest(add)
    assert code_digest(dx.task(retries=2)(add)) == code_digest(add)
    assert code_digest(wrapper) == code_digest(add)
    assert code_parts(dx.task(add)) == code_parts(add)


def test_a_task_a_function_refers_to_is_reached_through_its_raw_function(load: Loader) -> None:
    source = """
    import functools
    import dagexec as dx

    @dx.task
    def scale(x):
        return x * {factor}

    @functools.lru_cache
    def shift(x):
        return x + 1

    def run(x):
        return shift(scale(x))
    """
    (a,) = load("a", {"m": source.format(factor=2)}, "m")
    (b,) = load("b", {"m": source.format(factor=3)}, "m")
    assert _names(a.run) == ["m:run", "m:scale", "m:shift"]
    assert _changed(a.run, b.run) == {"m:scale"}
    assert code_digest(a.run) != code_digest(b.run)


def test_partial_arguments_and_bound_method_instances_count() -> None:
    class Counter:
        def __init__(self, start: int) -> None:
            self.start = start

        def next(self) -> int:
            return self.start + 1

    def add(x: int, y: int = 0) -> int:
        return x + y

    assert code_digest(functools.partial(add, 1)) == code_digest(functools.partial(add, 1))
    assert code_digest(functools.partial(add, 1)) != code_digest(functools.partial(add, 2))
    assert code_digest(functools.partial(add, 1, y=1)) != code_digest(functools.partial(add, 1, y=2))
    assert code_digest(Counter(1).next) == code_digest(Counter(1).next)
    assert code_digest(Counter(1).next) != code_digest(Counter(2).next)
    assert [n.rsplit(":", 1)[1] for n in _names(functools.partial(add, 1))] == [
        "partial <partial>",
        "test_partial_arguments_and_bound_method_instances_count.<locals>.add",
    ]


# -- code from elsewhere ------------------------------------------------------------------


def test_a_standard_library_function_contributes_a_stdlib_token(load: Loader) -> None:
    assert _token(json.dumps) == "stdlib:json.dumps"
    assert _token(json) == "stdlib:json"
    assert _token(len) == "stdlib:builtins.len"
    source = "import json\nfrom json import dumps\n\ndef f(x):\n    return json.loads(dumps(x)){tail}\n"
    (a,) = load("a", {"m": source.format(tail="")}, "m")
    (b,) = load("b", {"m": source.format(tail="[0]")}, "m")
    assert _names(a.f) == ["m:f"]  # json is not hashed by value
    assert code_digest(a.f) != code_digest(b.f)  # the code calling it still is


def test_an_installed_function_contributes_its_distribution_and_version() -> None:
    version = importlib.metadata.version("cloudpickle")
    assert _token(cloudpickle.dumps) == f"installed:cloudpickle=={version}:cloudpickle.cloudpickle.dumps"
    assert _token(cloudpickle) == f"installed:cloudpickle=={version}:cloudpickle"
    assert _token(dx.task) == f"dagexec=={dx.__version__}:task"


INSTALLED_SCRIPT = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import fakedist
import uses_fakedist
from dagexec.plan.codehash import _token, code_digest, code_parts
print(json.dumps({"function": _token(fakedist.work), "module": _token(fakedist),
                  "digest": code_digest(uses_fakedist.run), "parts": code_parts(uses_fakedist.run)}))
"""


def _fake_distribution(root: Path, version: str) -> Path:
    """A real installed distribution ``fakedist`` (a dist-info folder) in a ``site-packages``."""
    site = root / "site-packages"
    (site / "fakedist").mkdir(parents=True)
    (site / "fakedist" / "__init__.py").write_text("def work(x):\n    return x\n")
    info = site / f"fakedist-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakedist\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakedist\n")
    return site


def test_a_function_from_an_installed_distribution_depends_on_its_version(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "uses_fakedist.py").write_text("import fakedist\n\ndef run(x):\n    return fakedist.work(x)\n")
    out = {}
    for version in ("1.0", "2.0"):
        site = _fake_distribution(tmp_path / version, version)
        proc = subprocess.run(
            [sys.executable, "-c", INSTALLED_SCRIPT, str(site), str(user)],
            check=True,
            capture_output=True,
            text=True,
        )
        out[version] = json.loads(proc.stdout)
    assert out["1.0"]["function"] == "installed:fakedist==1.0:fakedist.work"
    assert out["1.0"]["module"] == "installed:fakedist==1.0:fakedist"
    assert out["2.0"]["function"] == "installed:fakedist==2.0:fakedist.work"
    assert [name for name, _ in out["1.0"]["parts"]] == ["uses_fakedist:run"]
    assert out["1.0"]["digest"] != out["2.0"]["digest"]


# -- stability ----------------------------------------------------------------------------

STABLE = """
import re

TABLE = {"alpha": {"x", "y", "z"}, "beta": frozenset({"p", "q", "r", "s"}), "gamma": (1, 2.5, None)}
PATTERN = re.compile(r"[a-z]+")

def helper(x):
    return x in {"one", "two", "three", "four", "five"}

def run(key, words):
    return [w for w in words if helper(w) or w in TABLE[key] or PATTERN.match(w)]
"""


def test_copies_in_two_folders_and_moved_lines_share_a_digest(load: Loader) -> None:
    (a,) = load("a", {"stable": STABLE}, "stable")
    (b,) = load("b", {"stable": STABLE}, "stable")
    (c,) = load("c", {"stable": "\n\n\n# moved down\n\n" + STABLE}, "stable")
    assert a.run.__code__.co_filename != b.run.__code__.co_filename
    assert a.run.__code__.co_firstlineno != c.run.__code__.co_firstlineno
    assert code_digest(a.run) == code_digest(b.run) == code_digest(c.run)
    assert code_parts(a.run) == code_parts(b.run) == code_parts(c.run)


SEED_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import stable
from dagexec.plan.codehash import code_digest, code_parts
print(json.dumps({"digest": code_digest(stable.run), "parts": code_parts(stable.run)}))
"""


def test_digests_are_the_same_under_two_hash_seeds(tmp_path: Path, load: Loader) -> None:
    (stable,) = load("here", {"stable": STABLE}, "stable")
    results = []
    for seed in ("0", "12345"):
        proc = subprocess.run(
            [sys.executable, "-c", SEED_SCRIPT, str(tmp_path / "here")],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        results.append(json.loads(proc.stdout))
    assert results[0] == results[1]
    assert results[0]["digest"] == code_digest(stable.run)
    assert [tuple(p) for p in results[0]["parts"]] == list(code_parts(stable.run))
    assert [name for name, _ in results[0]["parts"]] == ["stable:helper", "stable:run"]


SCRIPT_BODY = """
import dataclasses, enum, json, sys
from dagexec.plan.codehash import code_digest, code_parts

@dataclasses.dataclass
class Config:
    rate: float = 2.0
    tags: frozenset = frozenset({"a", "b", "c"})

class Color(enum.Enum):
    RED = 1
    BLUE = 2

class Slotted:
    __slots__ = ("a",)

    def __init__(self):
        self.a = 1

CONFIG = Config(3.0)

def run(x):
    return x * CONFIG.rate + Color.RED.value + Slotted().a

print(json.dumps({"digest": code_digest(run), "parts": code_parts(run)}))
"""


def test_a_scripts_functions_are_stable_when_its_lines_move(tmp_path: Path) -> None:
    results = []
    for seed, prefix in (("0", ""), ("12345", "\n\n\n# moved down\n")):
        script = tmp_path / f"script{seed}.py"
        script.write_text(prefix + SCRIPT_BODY)
        proc = subprocess.run(
            [sys.executable, str(script)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        results.append(json.loads(proc.stdout))
    assert results[0] == results[1]
    names = {name for name, _ in results[0]["parts"]}
    # the methods dataclasses makes are named differently from one Python version to the next
    assert {"__main__:Color", "__main__:Config", "__main__:Config.__init__", "__main__:Slotted",
            "__main__:Slotted.__init__", "__main__:run"} <= names  # fmt: skip


def test_code_objects_are_walked_in_one_module() -> None:
    """Fingerprints, cache keys and compile's checks read code objects through
    dagexec/plan/tokens.py alone (``feed_code``, ``global_names``)."""
    root = Path(dx.__file__).parent
    readers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if ".co_code" in p.read_text() or ".co_consts" in p.read_text()
    )
    assert readers == ["plan/tokens.py"]


def test_code_token_and_code_digest_share_the_walk_of_nested_code() -> None:
    """The fingerprint form feeds nested code into the same hash; the digest form hashes
    it apart, so a change inside a lambda changes both tokens."""
    from dagexec.plan.fingerprint import code_token

    def outer_a(xs: list[int]) -> list[int]:
        return sorted(xs, key=lambda x: x + 1)

    def outer_b(xs: list[int]) -> list[int]:
        return sorted(xs, key=lambda x: x + 2)

    outer_b.__qualname__ = outer_a.__qualname__
    assert code_token(outer_a) != code_token(outer_b)
    assert code_digest(outer_a) != code_digest(outer_b)
