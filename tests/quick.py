"""Hypothesis settings for the harness's own corpus tests, passed to ``verify``.

No explain phase (verify never shows its output; it costs seconds a failure) and no
example database, so that each seed finds its own examples. ``NO_SHRINK`` also skips
the shrink phase, most of the time of a failure, where only finding it counts.
"""

from __future__ import annotations

from hypothesis import Phase, settings

QUICK = settings(database=None, deadline=None,
                 phases=[phase for phase in Phase if phase is not Phase.explain])
NO_SHRINK = settings(QUICK, phases=[Phase.explicit, Phase.reuse, Phase.generate])
