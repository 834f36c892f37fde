"""pytest plugin of ./scripts/mutation (loaded with `-p tests.mutation.plugin`, never by the normal runs).

Each mutant re-runs the fast tests that reach the mutated function, so the property tests must be quick
and reproducible there: the same examples for every mutant (a mutant is killed or not, never by luck),
no shrinking (a failure is all mutation testing needs), and at most `MAX_EXAMPLES` examples even where a
test asks for more (the engine's model tests ask for 1,000; the normal runs keep every example).
"""
from __future__ import annotations

import pytest
from hypothesis import Phase, settings

MAX_EXAMPLES = 10

settings.register_profile("mutation", max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate))
settings.load_profile("mutation")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cap the examples of tests whose own @settings ask for more than MAX_EXAMPLES."""
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)  # set by @settings and @given
        if own is not None and own.max_examples > MAX_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(own, max_examples=MAX_EXAMPLES,  # type: ignore[union-attr]
                                                              derandomize=True, database=None,
                                                              phases=(Phase.explicit, Phase.reuse, Phase.generate))
