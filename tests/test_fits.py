"""The least-squares fits of the large-time studies, on curves with known answers."""

import math

import numpy as np
import pytest
import scipy.stats

from spacetime import ConfigError
from spacetime._fits import (
    fit_decay,
    fit_line,
    fit_power_law,
    spread,
    window_rule,
)


def test_exact_line_is_recovered_with_a_zero_width_interval():
    x = np.array([0.0, 1.0, 2.5, 4.0])
    fit = fit_line(x, 3.0 - 0.75 * x)
    assert fit.slope == pytest.approx(-0.75, abs=1e-14)
    assert fit.intercept == pytest.approx(3.0, abs=1e-14)
    assert fit.slope_high - fit.slope_low < 1e-12
    assert fit.dof == 2


def test_interval_is_the_textbook_t_interval():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 3, 9)
    y = 1.0 + 2.0 * x + rng.normal(0, 0.3, x.size)
    fit = fit_line(x, y, confidence=0.9)
    ref = scipy.stats.linregress(x, y)
    q = scipy.stats.t.ppf(0.95, x.size - 2)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-12)
    assert fit.slope_stderr == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.slope_high - fit.slope == pytest.approx(q * ref.stderr, rel=1e-10)
    assert fit.intercept_stderr == pytest.approx(ref.intercept_stderr, rel=1e-10)


def test_95_percent_interval_covers_the_true_slope_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    x = np.log([1, 2, 4, 8, 16, 32])
    hits = 0
    draws = 2000
    for _ in range(draws):
        y = -0.5 - 1.0 * x + rng.normal(0, 0.2, x.size)
        hits += fit_line(x, y).covers(-1.0)
    # binomial standard deviation at 2000 draws is 0.5 %
    assert 0.93 <= hits / draws <= 0.97


def test_power_law_slope_and_interval_cover_the_exponent():
    rng = np.random.default_rng(3)
    T = np.array([1, 2, 4, 8, 16, 32, 64.0])
    E = 0.3 * T**-1.0 * np.exp(rng.normal(0, 0.05, T.size))
    fit = fit_power_law(T, E)
    assert fit.covers(-1.0)
    assert abs(fit.slope + 1.0) < 0.05
    assert math.exp(fit.intercept) == pytest.approx(0.3, rel=0.1)


def test_two_points_give_an_infinite_interval():
    fit = fit_power_law([1.0, 2.0], [1.0, 0.5])
    assert fit.slope == pytest.approx(-1.0)
    assert fit.slope_low == -math.inf and fit.slope_high == math.inf


def test_power_law_refuses_non_positive_values():
    with pytest.raises(ConfigError, match="positive"):
        fit_power_law([1.0, 2.0, 3.0], [1.0, 0.0, 2.0])


def test_one_point_or_equal_x_is_refused():
    with pytest.raises(ConfigError, match="two points"):
        fit_line([1.0], [2.0])
    with pytest.raises(ConfigError, match="two points"):
        fit_line([1.0, 1.0], [2.0, 3.0])


def test_decay_fit_uses_only_the_window():
    t = np.linspace(0, 10, 101)
    y = 2.0 * np.exp(-1.3 * t)
    y[t > 3] = 1.0  # a plateau outside the window would ruin a global fit
    y[t < 0.4] = 50.0
    fit = fit_decay(t, y, (0.5, 2.5))
    assert fit.mu == pytest.approx(1.3, rel=1e-12)
    assert fit.C == pytest.approx(2.0, rel=1e-12)
    assert fit.n_points == int(np.sum((t >= 0.5) & (t <= 2.5)))
    assert fit.window == (0.5, 2.5)


def test_decay_fit_interval_covers_the_rate_of_a_noisy_curve():
    rng = np.random.default_rng(11)
    t = np.arange(0, 5, 0.1)
    y = 0.7 * np.exp(-0.9 * t) * np.exp(rng.normal(0, 0.05, t.size))
    fit = fit_decay(t, y, (0.5, 2.5))
    assert fit.mu_low <= 0.9 <= fit.mu_high
    assert fit.C_low <= 0.7 <= fit.C_high


def test_decay_fit_skips_zeros_and_refuses_an_empty_window():
    t = np.arange(0, 3, 0.5)
    y = np.exp(-t)
    y[2] = 0.0
    fit = fit_decay(t, y, (0.0, 3.0))
    assert fit.n_points == t.size - 1
    assert fit.mu == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="usable points"):
        fit_decay(t, y, (10.0, 20.0))


def test_default_window_is_a_fraction_of_the_smallest_horizon():
    assert window_rule([40, 5, 20, 10]) == pytest.approx((0.5, 2.5))
    assert window_rule([8.0], (0.25, 0.75)) == pytest.approx((2.0, 6.0))
    with pytest.raises(ConfigError):
        window_rule([5.0], (0.6, 0.5))


def test_spread_is_range_over_mean():
    assert spread([1.0, 1.1, 0.9]) == pytest.approx(0.2)
    assert math.isnan(spread([]))
