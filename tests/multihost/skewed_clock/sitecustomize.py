"""Sets this process's clock BMA_BED_CLOCK_SKEW seconds ahead, as the product reads it.

libfaketime would be the natural tool, but under it Python's sleeps fail (EINVAL) or its
timed waits hang, so the test bed skews the clock where the product reads it: the engine's
one `utcnow()` and `time.time()`. Loaded only by the skewed host (its PYTHONPATH starts here).
"""
import datetime as _dt
import os
import time as _time

_skew = float(os.environ.get("BMA_BED_CLOCK_SKEW", "0"))
if _skew:
    _real_time = _time.time
    _time.time = lambda: _real_time() + _skew

    import jobs.models as _models

    def _skewed_utcnow() -> _dt.datetime:
        return _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=_skew)

    _models.utcnow = _skewed_utcnow
