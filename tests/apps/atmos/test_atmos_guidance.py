"""The guidance weight a superres request runs with (checkpoint-tuned from stations alone)."""

import dataclasses

import pytest

from polydiff.apps.atmos.model import load_model
from polydiff.apps.atmos.superres import DEFAULT_GUIDANCE, SuperresOptions, resolved_guidance


def test_stations_alone_use_the_checkpoints_tuned_weight():
    turbulence, weather = load_model("turbulence"), load_model(None)
    assert (turbulence.config.station_guidance, weather.config.station_guidance) == (0.1, 0.5)
    asked = SuperresOptions(factor=None)
    assert resolved_guidance(turbulence, asked, coarse=False) == 0.1
    assert resolved_guidance(weather, asked, coarse=False) == 0.5
    # a coarse file (with or without stations) keeps the general default
    assert resolved_guidance(turbulence, SuperresOptions(), coarse=True) == DEFAULT_GUIDANCE
    # an explicit weight always wins
    assert resolved_guidance(turbulence, SuperresOptions(guidance=0.7), coarse=False) == 0.7
    # a checkpoint without a tuned weight falls back to the default
    untuned = turbulence._replace(config=dataclasses.replace(turbulence.config,
                                                             station_guidance=None))
    assert resolved_guidance(untuned, asked, coarse=False) == DEFAULT_GUIDANCE


def test_a_bad_tuned_weight_is_refused():
    config = load_model("turbulence").config
    with pytest.raises(ValueError, match="station_guidance"):
        dataclasses.replace(config, station_guidance=-1.0)
