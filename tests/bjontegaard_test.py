import numpy as np
import pytest
from scipy import integrate
from scipy.interpolate import PchipInterpolator

from llic_jax.bjontegaard import bd_psnr, bd_rate, quality_at_rate

RATE = [0.12, 0.2, 0.31, 0.46, 0.66, 0.91]
PSNR = [27.7, 29.4, 31.1, 33.0, 35.0, 36.9]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_a_uniformly_cheaper_curve_has_exactly_that_bd_rate(method):
    # Same quality at 0.9× the rate everywhere: log-rate shifts by log(0.9).
    assert bd_rate(RATE, PSNR, np.multiply(RATE, 0.9), PSNR, method) == pytest.approx(-10)
    # Same rates, +0.5 dB everywhere.
    assert bd_psnr(RATE, PSNR, RATE, np.add(PSNR, 0.5), method) == pytest.approx(0.5)


def test_pchip_bd_rate_equals_an_independent_quadrature():
    test_rate = [0.1, 0.17, 0.3, 0.44, 0.7]
    test_psnr = [27.5, 29.6, 31.9, 33.6, 35.8]
    low, high = max(min(PSNR), min(test_psnr)), min(max(PSNR), max(test_psnr))
    fit_a = PchipInterpolator(PSNR, np.log(RATE))
    fit_t = PchipInterpolator(test_psnr, np.log(test_rate))
    area = integrate.quad(lambda q: fit_t(q) - fit_a(q), low, high, limit=200)[0]
    expected = (np.exp(area / (high - low)) - 1) * 100
    assert bd_rate(RATE, PSNR, test_rate, test_psnr) == pytest.approx(expected, rel=1e-6)
    assert expected < 0  # the test curve is better: sanity of the fixture itself


def test_cubic_bd_psnr_equals_a_hand_polynomial_fit():
    test_rate = [0.1, 0.17, 0.3, 0.44, 0.7]
    test_psnr = [27.5, 29.6, 31.9, 33.6, 35.8]
    la, lt = np.log(RATE), np.log(test_rate)
    low, high = max(la.min(), lt.min()), min(la.max(), lt.max())
    pa, pt = np.polyfit(la, PSNR, 3), np.polyfit(lt, test_psnr, 3)
    xs = np.linspace(low, high, 200001)
    expected = integrate.trapezoid(np.polyval(pt, xs) - np.polyval(pa, xs), xs) / (
        high - low
    )
    got = bd_psnr(RATE, PSNR, test_rate, test_psnr, "cubic")
    assert got == pytest.approx(expected, abs=1e-6)


def test_two_point_pchip_curves_are_straight_lines_in_log_rate():
    # Two points: pchip is the chord, so the test line 0.8× cheaper gives exactly −20%.
    two_rate, two_psnr = [0.2, 0.5], [29.0, 33.0]
    assert bd_rate(two_rate, two_psnr, np.multiply(two_rate, 0.8), two_psnr) == (
        pytest.approx(-20)
    )
    # And its value between the points is linear in log-rate.
    middle = np.sqrt(0.2 * 0.5)
    assert quality_at_rate(two_rate, two_psnr, [middle])[0] == pytest.approx(31.0)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_quality_at_rate_follows_the_fit_and_never_extrapolates(method):
    got = quality_at_rate(RATE, PSNR, [RATE[0], RATE[3], 0.05, 2.0], method)
    assert got[1] == pytest.approx(PSNR[3], abs=0.05 if method == "cubic" else 1e-9)
    assert np.isnan(got[2]) and np.isnan(got[3])
    # pchip passes through every point; cubic is a least-squares fit near them.
    tolerance = 0.1 if method == "cubic" else 1e-9
    assert got[0] == pytest.approx(PSNR[0], abs=tolerance)
    between = quality_at_rate(RATE, PSNR, [0.25], method)[0]
    assert PSNR[1] < between < PSNR[2]


def test_bad_curves_are_refused():
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(RATE[:3], PSNR[:3], RATE, PSNR, "cubic")
    with pytest.raises(ValueError, match="at least 2"):
        bd_psnr(RATE, PSNR, RATE[:1], PSNR[:1])
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATE, PSNR, RATE, np.add(PSNR, 20))
    with pytest.raises(ValueError, match="positive"):
        bd_rate([0, 1, 2, 3], [1, 2, 3, 4], RATE, PSNR)
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate(RATE, PSNR, RATE, PSNR, "linear")
