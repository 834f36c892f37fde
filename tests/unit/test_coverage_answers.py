"""oss.coverage_answers: areas sampled and averaged as documented, and the reference's answer shapes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oss.coverage_answers import (
    LocationsQuery,
    areas_of,
    bulk_answer,
    disc_points,
    location_answers,
    predict_locations,
    redundancy_answer,
)
from radio.link_budget import INSTALLATION_LOSS_DB, radio_configuration
from radio.predict import Prediction, Sites, StationSite, distances_km, predict, sample_disc

RC1 = radio_configuration("RC1")
STATION = StationSite("0A01", 43.6, 1.44)
INF = float("inf")


def prediction(margins: list[list[float]], redundancy: list[int]) -> Prediction:
    n = len(margins)
    return Prediction(np.asarray(margins, dtype=float), np.asarray(redundancy, dtype=np.int64),
                      np.zeros(n, dtype=np.int8), np.zeros(n))


def test_a_disc_of_radius_0_is_the_location_alone():
    lat, lng, samples = disc_points([43.6, 10.0], [1.44, -3.0], 0)
    assert samples == 1 and lat.tolist() == [43.6, 10.0] and lng.tolist() == [1.44, -3.0]


def test_the_disc_of_one_location_is_sample_disc():
    lat, lng, samples = disc_points([43.6], [1.44], 300)
    want_lat, want_lng = sample_disc(43.6, 1.44, 300)
    assert samples == len(want_lat) == 19
    np.testing.assert_allclose(lat, want_lat, atol=1e-12)
    np.testing.assert_allclose(lng, want_lng, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(-80, 80), st.floats(-179, 179), st.floats(1, 5000))
def test_every_sample_lies_within_the_radius_and_the_outer_ring_on_it(lat, lng, radius_m):
    points_lat, points_lng, samples = disc_points([lat, lat / 2], [lng, lng / 3], radius_m)
    for i, (c_lat, c_lng) in enumerate(((lat, lng), (lat / 2, lng / 3))):
        part = slice(i * samples, (i + 1) * samples)
        d_m = distances_km(Sites.of([StationSite("X", c_lat, c_lng)]), points_lat[part], points_lng[part])[:, 0] * 1000
        assert d_m[0] == pytest.approx(0, abs=1e-6)  # the centre first
        assert d_m.max() <= radius_m * 1.01
        assert d_m.max() >= radius_m * 0.99


def test_margins_are_floored_at_0_averaged_and_rounded():
    # Two locations of 2 samples each: -inf (no such station) and negative margins count as 0.
    areas = areas_of(prediction([[30.4, 10.0, -INF], [20.0, -5.0, -INF],
                                 [-3.0, -8.0, -9.0], [-INF, -INF, -INF]], [2, 1, 0, 0]), 2)
    assert areas.margins.tolist() == [[25, 5, 0], [0, 0, 0]]
    assert areas.covered.tolist() == [True, False]


def test_a_location_is_covered_when_at_least_half_its_area_is():
    margins = [[5.0, -INF, -INF]] * 4
    assert areas_of(prediction(margins, [1, 1, 0, 0]), 4).covered.tolist() == [True]
    assert areas_of(prediction(margins, [1, 0, 0, 0]), 4).covered.tolist() == [False]


def test_location_answers_follow_the_order_and_shape_of_the_reference():
    areas = areas_of(prediction([[47.2, 32.0, 17.0], [-1.0, -INF, -INF]], [3, 0]), 1)
    assert location_answers([42.3652, 43.0976], [2.5678, -0.4561], areas) == [
        {"lat": 42.3652, "lng": 2.5678, "locationCovered": True, "margins": [47, 32, 17]},
        {"lat": 43.0976, "lng": -0.4561, "locationCovered": False, "margins": [0, 0, 0]}]


def test_beside_a_station_is_covered_far_away_is_not():
    sites = Sites.of([STATION])
    near, far = predict_locations(sites, LocationsQuery([43.601, 45.4], [1.441, 1.44]), RC1)
    assert near["locationCovered"] and near["margins"][0] > 20 and near["margins"][1:] == [0, 0]
    assert far == {"lat": 45.4, "lng": 1.44, "locationCovered": False, "margins": [0, 0, 0]}


@pytest.mark.parametrize("installation", ["INDOOR", "UNDERGROUND"])
def test_an_installation_lowers_every_margin_by_its_loss(installation):
    sites = Sites.of([STATION, StationSite("0A02", 43.605, 1.445), StationSite("0A03", 43.597, 1.436)])
    where = ([43.601], [1.441])
    outdoor = predict_locations(sites, LocationsQuery(*where, 0), RC1)[0]["margins"]
    inside = predict_locations(sites, LocationsQuery(*where, 0, installation), RC1)[0]["margins"]
    assert min(outdoor) > INSTALLATION_LOSS_DB[installation]  # nothing floored: the difference is exact
    assert [o - i for o, i in zip(outdoor, inside, strict=True)] == [INSTALLATION_LOSS_DB[installation]] * 3


def test_a_weaker_uplink_class_never_gains_margin():
    sites = Sites.of([STATION])
    margins = [predict_locations(sites, LocationsQuery([43.63], [1.47], 300, "OUTDOOR", c), RC1)[0]["margins"][0]
               for c in range(4)]
    assert margins == sorted(margins, reverse=True) and margins[0] > margins[3]


def test_redundancy_counts_stations_at_0_db_or_more_up_to_3():
    assert redundancy_answer(prediction([[5.0, 1.0, -2.0]], [2])) == {"redundancy": 2}
    assert redundancy_answer(prediction([[9.0, 8.0, 7.0]], [5])) == {"redundancy": 3}
    sites = Sites.of([STATION, StationSite("0A02", 43.605, 1.445), StationSite("0A03", 43.597, 1.436),
                      StationSite("0A04", 48.85, 2.35)])
    assert redundancy_answer(predict(sites, [43.601], [1.441], RC1)) == {"redundancy": 3}
    assert redundancy_answer(predict(sites, [48.85], [2.35], RC1)) == {"redundancy": 1}
    assert redundancy_answer(predict(sites, [0.0], [0.0], RC1)) == {"redundancy": 0}


def test_a_stored_query_reads_back_the_same():
    query = LocationsQuery([1.5, -2.25], [3.0, 4.0], 120.0, "UNDERGROUND", 2)
    assert LocationsQuery.from_stored(query.stored()) == query


def test_the_bulk_answer_has_results_once_done():
    assert bulk_answer(False, 5, None) == {"jobDone": False, "time": 5, "results": []}
    row = {"lat": 1.0, "lng": 2.0, "locationCovered": False, "margins": [0, 0, 0]}
    assert bulk_answer(True, 9, [row]) == {"jobDone": True, "time": 9, "results": [row]}


def test_an_unknown_radio_configuration_is_refused_naming_the_setting():
    from oss.app import radio_configuration_named
    assert radio_configuration_named("RC2").bit_rate == 600
    with pytest.raises(ValueError, match="BACKHAUL_RADIO_CONFIGURATION: radio configuration: 'RC9' is not one of RC1"):
        radio_configuration_named("RC9")
