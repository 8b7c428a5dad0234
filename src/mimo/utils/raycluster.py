"""Ray for the parts of a run that use it (reward actors, vLLM rollout engines): join or start it once.

Whichever part comes first starts a local Ray (or joins ``address``); the others find it running.  The part that
started it is told so and shuts it down when it closes."""

from __future__ import annotations

from typing import Any

from mimo.errors import MimoError


def ensure_ray(what: str, address: str | None = None, num_cpus: int | None = None,
               runtime_env: dict | None = None) -> tuple[Any, bool]:
    """``(ray, started)``: Ray imported and initialised -- the running Ray if there is one, else ``address``, else a
    local Ray with ``num_cpus`` CPUs.  ``started``: this call initialised it (so the caller shuts it down).
    ``what`` names the feature in the error when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise MimoError(f"{what} needs Ray: pip install 'mimo[ray]'") from None
    if ray.is_initialized():
        return ray, False
    local = {} if address or num_cpus is None else {"num_cpus": num_cpus}
    ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False, **local)
    return ray, True
