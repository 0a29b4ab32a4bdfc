import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is in the `test` extra; other tests can still run without it
    settings = None

if settings is not None:
    # HYPOTHESIS_PROFILE=fast (default, ~200 examples) or slow (2000 examples, e.g. nightly CI).
    settings.register_profile("fast", max_examples=200, deadline=None)
    settings.register_profile(
        "slow", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


# Soak variants carry @pytest.mark.slow and run only with --run-slow (or OXICACHE_RUN_SLOW=1); .ci/run
# passes it, so CI runs the whole matrix while the default run stays short.
def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run @pytest.mark.slow soak tests")


def pytest_collection_modifyitems(config, items):
    import pytest

    if config.getoption("--run-slow") or os.environ.get("OXICACHE_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="soak variant: run with --run-slow (or OXICACHE_RUN_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
