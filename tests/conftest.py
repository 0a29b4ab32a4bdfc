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
