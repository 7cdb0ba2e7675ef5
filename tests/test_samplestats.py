"""Sample statistics against their published definitions, on synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from gandoctor import samplestats as ss


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_coverage_and_precision_of_the_same_distribution_are_high(rng):
    real, fake = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    assert ss.coverage(real, fake) > 0.9
    assert ss.precision(real, fake) > 0.9
    assert ss.recall(real, fake) > 0.9


def test_half_the_modes_halves_coverage_and_recall_but_not_precision(rng):
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    real = centres[rng.integers(0, 4, 800)] + 0.3 * rng.normal(size=(800, 2))
    fake = centres[rng.integers(0, 2, 800)] + 0.3 * rng.normal(size=(800, 2))
    assert ss.coverage(real, fake) == pytest.approx(0.5, abs=0.08)
    assert ss.recall(real, fake) == pytest.approx(0.5, abs=0.08)
    assert ss.precision(real, fake) > 0.9


def test_density_is_about_one_for_matching_distributions_and_zero_off_support(rng):
    real, fake = rng.normal(size=(600, 3)), rng.normal(size=(600, 3))
    assert ss.density(real, fake) == pytest.approx(1.0, abs=0.15)
    assert ss.density(real, rng.normal(size=(600, 3)) + 20.0) == 0.0


def test_vendi_score_counts_effective_distinct_samples():
    identical = np.zeros((50, 3))
    assert ss.vendi_score(identical) == pytest.approx(1.0)
    far_apart = np.eye(5) * 100.0  # five points, no similarity between them
    assert ss.vendi_score(far_apart, bandwidth=1.0) == pytest.approx(5.0, rel=1e-6)
    two_clusters = np.vstack([np.zeros((20, 2)), np.full((20, 2), 100.0)])
    assert ss.vendi_score(two_clusters, bandwidth=1.0) == pytest.approx(2.0, rel=1e-6)


def test_vendi_ratio_drops_when_fakes_collapse(rng):
    real = rng.normal(size=(200, 8))
    assert ss.vendi_ratio(real, rng.normal(size=(200, 8))) == pytest.approx(1.0, abs=0.15)
    collapsed = 0.01 * rng.normal(size=(200, 8))
    assert ss.vendi_score(collapsed, bandwidth=3.0) == pytest.approx(1.0, abs=0.01)
    assert ss.vendi_ratio(real, collapsed) < 0.3


def test_ndb_finds_the_missing_bins(rng):
    centres = rng.normal(scale=10, size=(10, 2))
    real = centres[rng.integers(0, 10, 1000)] + 0.2 * rng.normal(size=(1000, 2))
    same = centres[rng.integers(0, 10, 1000)] + 0.2 * rng.normal(size=(1000, 2))
    half = centres[rng.integers(0, 5, 1000)] + 0.2 * rng.normal(size=(1000, 2))
    different_same, bins = ss.ndb(real, same, bins=10)
    different_half, _ = ss.ndb(real, half, bins=10)
    assert bins == 10
    assert different_same <= 2
    assert different_half >= 8


def test_turnover_is_low_when_fakes_stay_and_high_when_they_move(rng):
    real_a, real_b = rng.normal(size=(256, 2)), rng.normal(size=(256, 2))
    prev = rng.normal(size=(256, 2))
    stay = ss.compare(real_a, real_b, rng.normal(size=(256, 2)), prev, extended=True)
    assert stay.density == pytest.approx(1.0, abs=0.2) and "feat.vendi_ratio" in stay.as_signals()
    moved = ss.compare(real_a, real_b, rng.normal(size=(256, 2)) + 6.0, prev)
    assert stay.turnover < 0.2
    assert moved.turnover > 0.9


def test_ndb_fraction_is_small_for_the_same_distribution_and_large_for_one_mode(rng):
    centres = rng.normal(scale=10, size=(10, 2))
    real = centres[rng.integers(0, 10, 512)] + 0.2 * rng.normal(size=(512, 2))
    same = centres[rng.integers(0, 10, 512)] + 0.2 * rng.normal(size=(512, 2))
    one_mode = centres[0] + 0.2 * rng.normal(size=(512, 2))
    assert ss.ndb_fraction(real, same, bins=10) <= 0.2
    assert ss.ndb_fraction(real, one_mode, bins=10) >= 0.8


@pytest.mark.parametrize("shift", [0.0, 0.7, 5.0])
def test_compare_matches_the_definitions_one_by_one(rng, shift):
    # compare() shares distance matrices between statistics; each must equal its definition.
    real_a, real_b = rng.normal(size=(200, 6)), rng.normal(size=(200, 6))
    fake = rng.normal(size=(200, 6)) * 0.8 + shift
    fake[:40] = fake[0] + 1e-4 * rng.normal(size=(40, 6))  # some near-duplicates
    prev = rng.normal(size=(200, 6)) + 0.3
    got = ss.compare(real_a, real_b, fake, prev, extended=True)
    radii = ss.kth_neighbour_radii(real_a)
    cov_rr = ss.coverage(real_a, real_b, radii)
    assert got.coverage == pytest.approx(ss.coverage(real_a, fake, radii))
    assert got.coverage_ratio == pytest.approx(ss.coverage(real_a, fake, radii) / cov_rr)
    assert got.precision == pytest.approx(ss.precision(real_a, fake, radii))
    assert got.dup_rate == pytest.approx(ss.duplicate_rate(real_b, fake))
    assert got.diversity_ratio == pytest.approx(ss.mean_pairwise_distance(fake) / ss.mean_pairwise_distance(real_a))
    assert got.density == pytest.approx(ss.density(real_a, fake, radii))
    assert got.recall == pytest.approx(ss.recall(real_a, fake))
    assert got.vendi_ratio == pytest.approx(ss.vendi_ratio(real_a, fake))


def test_fewer_fakes_than_reals_keep_the_reals_neighbourhoods_and_a_same_size_calibration(rng):
    # 128 fakes against 256 reals of a 16-mode mixture: radii from all 256 reals; coverage and
    # duplicates calibrated against 128 reals.
    real_a, real_b = _mixture(rng, 256, np.arange(16)), _mixture(rng, 256, np.arange(16))
    fake = _mixture(rng, 128, np.arange(16))
    got = ss.compare(real_a, real_b, fake, None)
    radii = ss.kth_neighbour_radii(real_a)
    assert got.precision == pytest.approx(ss.precision(real_a, fake, radii))
    assert got.coverage_ratio == pytest.approx(ss.coverage(real_a, fake, radii) / ss.coverage(real_a, real_b[:128], radii))
    assert got.dup_rate == pytest.approx(ss.duplicate_rate(real_b[:128], fake))
    assert got.diversity_ratio == pytest.approx(ss.mean_pairwise_distance(fake) / ss.mean_pairwise_distance(real_a))
    # Fakes of the real distribution read as real whatever their count.
    assert got.coverage_ratio == pytest.approx(1.0, abs=0.1) and got.precision > 0.9


def _mixture(rng, n, modes):
    centres = np.array([[10.0 * (i % 4), 10.0 * (i // 4)] for i in range(16)])
    return centres[rng.choice(modes, n)] + 0.5 * rng.normal(size=(n, 2))


def test_bins_are_deterministic_and_find_well_separated_modes(rng):
    reservoir = _mixture(rng, 512, np.arange(16))
    a, b = ss.fit_bins(reservoir, seed=3), ss.fit_bins(reservoir, seed=3)
    assert np.array_equal(a.centroids, b.centroids)
    # One cell per mode: every mode's samples land in a single cell, and no two modes share one.
    labels = a.assign(reservoir)
    modes = np.round(reservoir / 10.0).astype(int) @ np.array([1, 4])
    assert len({(m, c) for m, c in zip(modes, labels, strict=True)}) == 16


def test_occupancy_is_real_like_for_real_data_and_counts_the_modes_a_fake_reaches(rng):
    bins = ss.fit_bins(_mixture(rng, 512, np.arange(16)), seed=0)
    real_a, real_b = _mixture(rng, 256, np.arange(16)), _mixture(rng, 256, np.arange(16))
    ratio, tv = ss.occupancy(bins, real_a, real_b, _mixture(rng, 256, np.arange(16)))
    assert ratio == pytest.approx(1.0, abs=0.07)
    assert abs(tv) < 0.1
    ratio, tv = ss.occupancy(bins, real_a, real_b, _mixture(rng, 256, np.arange(4)))
    assert ratio == pytest.approx(4 / 16, abs=0.07)
    # 3/4 of the real mass sits where no fake is; the real-vs-real TV at n=256 (~0.14) is taken off.
    real_vs_real = 0.5 * np.abs(bins.histogram(real_b) - bins.histogram(real_a)).sum()
    assert 0.05 < real_vs_real < 0.25
    assert tv + real_vs_real == pytest.approx(0.75, abs=0.08)
    ratio, tv = ss.occupancy(bins, real_a, real_b, _mixture(rng, 256, np.array([5])))
    cell = bins.assign(np.array([[10.0, 10.0]]))[0]  # mode 5's cell
    assert ratio == pytest.approx(1 / 16, abs=0.01)
    assert tv == pytest.approx(1 - bins.histogram(real_a)[cell] - real_vs_real) and tv > 0.7


def test_compare_writes_the_bin_statistics_only_when_bins_are_given(rng):
    real_a, real_b, fake = (_mixture(rng, 128, np.arange(16)) for _ in range(3))
    assert "feat.occupancy_ratio" not in ss.compare(real_a, real_b, fake, None).as_signals()
    bins = ss.fit_bins(np.vstack([real_a, real_b]), seed=0)
    signals = ss.compare(real_a, real_b, fake, None, bins=bins).as_signals()
    assert (signals["feat.occupancy_ratio"], signals["feat.bin_tv"]) == ss.occupancy(bins, real_a, real_b, fake)
    with pytest.raises(ValueError, match="shape"):
        ss.fit_bins(np.zeros(5))


def test_bin_churn_counts_the_modes_g_let_go_beyond_the_real_floor(rng):
    bins = ss.fit_bins(_mixture(rng, 512, np.arange(16)), seed=0)
    real_a, real_b = _mixture(rng, 128, np.arange(16)), _mixture(rng, 128, np.arange(16))
    four = _mixture(rng, 128, np.arange(4))
    # G keeps its four modes: nothing let go.
    assert ss.bin_churn(bins, four, _mixture(rng, 128, np.arange(4)), real_a, real_b) == pytest.approx(0.0, abs=0.05)
    # G hops to four other modes: all it held is gone.
    assert ss.bin_churn(bins, four, _mixture(rng, 128, np.arange(4, 8)), real_a, real_b) == pytest.approx(1.0, abs=0.05)
    # Half kept, half swapped.
    assert ss.bin_churn(bins, four, _mixture(rng, 128, np.array([0, 1, 8, 9])), real_a, real_b) == pytest.approx(0.5, abs=0.05)
    # Spreading out from four modes to all sixteen loses none of the four.
    assert ss.bin_churn(bins, four, _mixture(rng, 128, np.arange(16)), real_a, real_b) == pytest.approx(0.0, abs=0.05)
    hopped = _mixture(rng, 128, np.arange(4, 8))
    signals = ss.compare(real_a, real_b, hopped, four, bins=bins).as_signals()
    assert signals["feat.bin_churn"] == ss.bin_churn(bins, four, hopped, real_a, real_b)
    assert "feat.bin_churn" not in ss.compare(real_a, real_b, four, None, bins=bins).as_signals()


def test_bin_churn_is_undefined_when_g_held_no_mode_with_samples_that_look_real(rng):
    bins = ss.fit_bins(_mixture(rng, 512, np.arange(16)), seed=0)
    real_a, real_b = _mixture(rng, 128, np.arange(16)), _mixture(rng, 128, np.arange(16))
    junk = rng.normal(size=(128, 2)) * 100.0 + 500.0  # nowhere near the data
    assert np.isnan(ss.bin_churn(bins, junk, _mixture(rng, 128, np.arange(4)), real_a, real_b))


def _blur(real):
    return ss.gaussian_blur(real, ss.kth_neighbour_radii(real), real)


def test_a_blur_of_tight_modes_is_neither_precise_nor_like_the_data(rng):
    # A 5x5 grid of tight modes: the Gaussian with the reals' mean and covariance lands between them.
    centres = np.array([(x, y) for x in range(-2, 3) for y in range(-2, 3)], dtype=float) * 2.0
    precision, apart = _blur(centres[rng.integers(0, 25, 256)] + 0.05 * rng.normal(size=(256, 2)))
    assert precision < 0.15 and apart > 0.8


def test_a_blur_of_real_digits_reads_precise_yet_lies_apart_from_them(rng):
    # sklearn's 8x8 digits as pixels: the blur sits inside the reals' k-NN balls (precision
    # cannot vouch there) but its nearest neighbours give it away.
    from sklearn.datasets import load_digits

    digits = load_digits().data / 16.0
    precision, apart = _blur(digits[rng.choice(len(digits), 256, replace=False)])
    assert precision > 0.5 and apart > 0.62


def test_a_blur_of_gaussian_data_is_as_good_as_the_data(rng):
    for dim in (1, 8, 64):
        precision, apart = _blur(rng.normal(size=(256, dim)) * rng.uniform(0.5, 2.0, dim) + 3.0)
        assert precision > 0.8 and abs(apart - 0.5) < 0.08, dim


def test_the_blur_is_seeded_leaves_the_global_rng_alone_and_is_written_by_compare(rng):
    real = rng.normal(size=(300, 3)) * np.array([1.0, 3.0, 0.2]) + 5.0
    state = np.random.get_state()[1].copy()
    assert _blur(real) == _blur(real)  # seeded
    assert (np.random.get_state()[1] == state).all()
    stats = ss.compare(real[:150], real[150:], rng.normal(size=(100, 3)), None)
    assert 0.0 <= stats.precision_null <= 1.0 and 0.0 <= stats.blur_apart <= 1.0
    assert {"feat.precision_null", "feat.blur_apart"} <= stats.as_signals().keys()
    assert all(np.isnan(v) for v in _blur(real[:3]))


def test_the_probe_keeps_a_bounded_pool_and_reuses_the_blur_statistics_once_it_is_full():
    import types

    import torch

    from gandoctor.probes.samples import BLUR_EVERY, FeatureBank, SampleStatsProbe

    probe = SampleStatsProbe(types.SimpleNamespace(seed=0))  # type: ignore[arg-type]
    bank = FeatureBank()
    sizes, kinds = [], []
    for _ in range(3 * BLUR_EVERY):
        bank.add_to_pool(torch.randn(64, 4))  # what FeatureProbe adds at each feature step
        blur = probe._blur_input(bank, moving_features=False)
        probe._check_done(blur, 0.5, 0.5, bank.pool_size())  # what measure() does after compare()
        sizes.append(bank.pool_size())
        kinds.append("reused" if isinstance(blur, tuple) else "computed")
    assert max(sizes) == ss.BLUR_POOL
    assert kinds[:4] == ["computed"] * 4  # the pool still growing: blurred afresh each check
    # full from the 4th check: then afresh every BLUR_EVERY checks only
    assert [i for i, k in enumerate(kinds) if k == "computed"][4:] == [3 + BLUR_EVERY, 3 + 2 * BLUR_EVERY]
    assert not isinstance(probe._blur_input(bank, moving_features=True), tuple)  # D's features: always afresh
