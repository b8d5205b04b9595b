#!/usr/bin/env python3
"""Write tests/fixtures/stats/*.json: reference values for src/monitoring/stats.

Every number the Rust statistics are checked against comes from scipy, numpy,
scikit-learn or river, run here. Deterministic: large samples are not stored
but described by a generator spec (SplitMix64, see `Rng`) that the Rust tests
replay bit for bit, which keeps the committed JSON small.

Usage:  python scripts/stats_fixtures.py   (needs scipy numpy scikit-learn river)
"""

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import river
import scipy
import scipy.special as sc
import sklearn
from river.drift import PageHinkley
from scipy import stats
from sklearn.isotonic import IsotonicRegression

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stats"
MASK = (1 << 64) - 1


class Rng:
    """SplitMix64; mirrored by `fixtures::Rng` in src/monitoring/stats/mod.rs."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) * 2.0**-53


def generate(spec):
    """Sample described by `spec`; the Rust side does the same float operations."""
    rng = Rng(spec["seed"])
    out = []
    for _ in range(spec["n"]):
        if spec["shape"] == "normal":  # Irwin-Hall: sum of 12 uniforms, minus 6
            s = 0.0
            for _ in range(12):
                s += rng.uniform()
            z = s - 6.0
        elif spec["shape"] == "uniform":
            z = rng.uniform()
        elif spec["shape"] == "levels":  # integers 0..levels-1: many ties
            z = float(math.floor(rng.uniform() * spec["levels"]))
        else:
            raise ValueError(spec["shape"])
        out.append(spec["loc"] + spec["scale"] * z)
    return out


def gen(seed, n, shape="normal", loc=0.0, scale=1.0, levels=0):
    return {"seed": seed, "n": n, "shape": shape, "loc": loc, "scale": scale, "levels": levels}


def values(sample):
    return np.asarray(generate(sample) if isinstance(sample, dict) else sample, dtype=float)


def versions():
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "river": river.__version__,
    }


def write(name, body):
    body = {"generated_by": "scripts/stats_fixtures.py", "versions": versions(), **body}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(body, indent=1) + "\n")
    print(f"{path.relative_to(OUT.parent.parent.parent)}: {path.stat().st_size} bytes")


# ---------------------------------------------------------------- KS


def ks_case(name, a, b, mode="auto"):
    xa, xb = values(a), values(b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = stats.ks_2samp(xa, xb, method=mode)
    switched = any("Switching to" in str(w.message) for w in caught)
    exact = {"auto": max(len(xa), len(xb)) <= 10000, "exact": True, "asymp": False}[mode] and not switched
    return {
        "name": name,
        "a": a,
        "b": b,
        "mode": mode,
        "statistic": float(r.statistic),
        "pvalue": float(r.pvalue),
        "method": "exact" if exact else "asymptotic",
    }


def ks_fixture():
    cases = [
        ks_case("tiny_no_ties", [0.1, 0.5, 0.9, 1.3, 2.2], [0.3, 0.4, 1.1, 1.7, 2.5]),
        ks_case("n1_vs_n1", [1.0], [2.0]),
        ks_case("n1_vs_n1_equal", [1.0], [1.0]),
        ks_case("n1_vs_n10", [0.5], [float(i) for i in range(10)]),
        ks_case("all_equal_both", [3.0] * 7, [3.0] * 4),
        ks_case("disjoint", [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]),
        ks_case("ties_between_samples", gen(1, 20, "levels", levels=6), gen(2, 30, "levels", levels=6)),
        ks_case("levels_shifted", gen(3, 200, "levels", levels=5), gen(4, 150, "levels", loc=1.0, levels=5)),
        ks_case("equal_100_shift", gen(5, 100), gen(6, 100, loc=0.3)),
        ks_case("equal_365_null", gen(7, 365), gen(8, 365)),
        ks_case("unequal_365_500_null", gen(9, 365), gen(10, 500)),
        ks_case("unequal_365_500_shift", gen(11, 365), gen(12, 500, loc=0.25)),
        ks_case("unequal_365_500_far", gen(13, 365), gen(14, 500, loc=2.0)),
        ks_case("coprime_97_101", gen(15, 97), gen(16, 101, loc=0.2)),
        ks_case("ref10000_win500_null", gen(17, 10000), gen(18, 500)),
        ks_case("ref10000_win500_shift", gen(19, 10000), gen(20, 500, loc=0.15)),
        ks_case("ref10000_win500_far", gen(45, 10000), gen(46, 500, loc=2.0)),
        ks_case("ref10000_win10000_null", gen(21, 10000), gen(22, 10000)),
        ks_case("ref10000_win10000_shift", gen(23, 10000), gen(24, 10000, loc=0.05)),
        ks_case("ref10000_win10000_far", gen(25, 10000), gen(26, 10000, loc=1.0)),
        ks_case("ref10000_win9999_shift", gen(27, 10000), gen(28, 9999, loc=0.03)),
        ks_case("uniform_1000_vs_700_scale", gen(29, 1000, "uniform"), gen(30, 700, "uniform", scale=1.1)),
        ks_case("asymp_10001_500_null", gen(31, 10001), gen(32, 500)),
        ks_case("asymp_10001_500_shift", gen(33, 10001), gen(34, 500, loc=0.3)),
        ks_case("asymp_12000_3000_far", gen(35, 12000), gen(36, 3000, loc=1.5)),
        ks_case("asymp_20000_100_small_n", gen(37, 20000), gen(38, 100, loc=0.2)),
        ks_case("asymp_20000_100_mid", gen(39, 20000), gen(40, 100, loc=0.45)),
        ks_case("asymp_30000_30_tiny_n", gen(41, 30000), gen(42, 30, loc=0.3)),
        ks_case("asymp_15000_150_levels", gen(43, 15000, "levels", levels=8), gen(44, 150, "levels", levels=8)),
        ks_case("mode_asymp_365_500", gen(11, 365), gen(12, 500, loc=0.25), mode="asymp"),
        ks_case("mode_asymp_10000_500", gen(19, 10000), gen(20, 500, loc=0.15), mode="asymp"),
        ks_case("mode_asymp_tiny", [0.1, 0.5, 0.9], [0.3, 0.4, 1.1, 1.7], mode="asymp"),
        ks_case("mode_exact_10001_500", gen(33, 10001), gen(34, 500, loc=0.3), mode="exact"),
        ks_case("mode_exact_fallback", [0.1, 0.5, 0.9, 1.3, 2.2], [0.3, 0.4, 1.1, 1.7, 2.5], mode="exact"),
    ]
    write("ks", {"note": "scipy.stats.ks_2samp(a, b), defaults", "cases": cases, "exact": ks_exact_grid()})


def ks_exact_grid():
    """scipy's exact two-sided two-sample p-value for D = h / lcm(n1, n2), over a grid of h."""
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    rows = []
    for n1, n2 in [(1, 1), (2, 3), (3, 5), (4, 6), (5, 5), (7, 3), (8, 12), (13, 17), (20, 20), (100, 7),
                   (30, 45), (365, 500), (1000, 999)]:
        g = math.gcd(n1, n2)
        lcm = n1 // g * n2
        for h in sorted({1, 2, 3, lcm // 7, lcm // 5, lcm // 3, lcm // 2, (2 * lcm) // 3, lcm - 1, lcm} - {0}):
            ok, _, p = _attempt_exact_2kssamp(n1, n2, g, h / lcm, "two-sided")
            rows.append({"n1": n1, "n2": n2, "h": h, "ok": bool(ok), "pvalue": float(p) if ok else None})
    return rows


def kstwo_fixture():
    """kstwo.sf(x, n) on a grid that visits every branch of scipy's _kolmogn."""
    points = []
    for n in [1, 2, 3, 5, 10, 30, 100, 140, 141, 477, 1000, 5000, 30000, 100001]:
        xs = {0.4 / n, 0.5 / n, 0.75 / n, 1.0 / n, 0.5, 0.6, 0.95, 1.0 - 1.0 / n + 1e-9}
        for nx2 in [0.05, 0.3, 0.7, 0.754, 0.76, 1.0, 1.5, 2.0, 2.19, 2.21, 3.0, 3.9, 4.1, 8, 17.9, 18.1, 60, 200, 369, 371]:
            xs.add(math.sqrt(nx2 / n))
        for x in sorted(xs):
            if 0 < x < 1:
                points.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n))})
    smirnov = []
    for n in [1, 2, 5, 10, 50, 141, 1000, 20000]:
        for x in [0.001, 0.5 / n, 1.0 / n, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1 - 0.5 / n]:
            if 0 < x < 1:
                smirnov.append({"n": n, "x": x, "sf": float(sc.smirnov(n, x))})
    write("kstwo", {"note": "scipy.stats.kstwo.sf(x, n) and scipy.special.smirnov(n, x)",
                    "kstwo_sf": points, "smirnov": smirnov})


# ---------------------------------------------------------------- special


def special_fixture():
    gammaincc = []
    for a in [0.5, 1.0, 1.5, 2.0, 2.5, 4.5, 10.0, 24.5, 50.0, 150.0, 500.0]:
        for x in [1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 80.0, 200.0, 600.0, 1500.0]:
            gammaincc.append({"a": a, "x": x, "q": float(sc.gammaincc(a, x))})
    ndtr = [{"z": z, "p": float(sc.ndtr(z))}
            for z in [-37.0, -30.0, -20.0, -10.0, -6.0, -3.5, -2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 1.96, 3.0, 6.0, 8.5]]
    ndtri = [{"p": p, "z": float(sc.ndtri(p))}
             for p in [1e-300, 1e-100, 1e-20, 1e-8, 1e-3, 0.025, 0.07, 0.075, 0.2, 0.5, 0.6, 0.925, 0.95, 0.975, 0.995,
                       1 - 1e-10, 1 - 2**-52]]
    write("special", {"note": "scipy.special.gammaincc, ndtr, ndtri",
                      "gammaincc": gammaincc, "ndtr": ndtr, "ndtri": ndtri})


# ---------------------------------------------------------------- chi-square


def chi2_fixture():
    cases = []

    def case(name, observed, expected):
        obs = np.asarray(observed, dtype=float)
        exp = np.asarray(expected, dtype=float)
        exp_scaled = exp * (obs.sum() / exp.sum())  # scipy requires equal sums
        r = stats.chisquare(obs, exp_scaled)
        cases.append({"name": name, "observed": observed, "expected": expected,
                      "statistic": float(r.statistic), "pvalue": float(r.pvalue), "dof": len(obs) - 1})

    case("textbook_dice", [16, 18, 16, 14, 12, 12], [1, 1, 1, 1, 1, 1])
    case("two_bins", [30, 70], [50, 50])
    case("shares_as_expected", [100, 230, 310, 250, 110], [0.1, 0.2, 0.3, 0.25, 0.15])
    case("identical", [5, 10, 15], [5, 10, 15])
    case("strong_drift", [500, 20, 20, 20, 440], [100, 200, 400, 200, 100])
    case("huge_statistic", [10000, 0, 0, 0], [2500, 2500, 2500, 2500])
    case("many_bins", [float(v) for v in generate(gen(50, 40, "levels", loc=20.0, levels=15))], [1.0] * 40)
    write("chi2", {"note": "scipy.stats.chisquare(obs, exp * obs.sum()/exp.sum())", "cases": cases})


# ---------------------------------------------------------------- PSI

PSI_EPS = 1e-4


def psi_reference(ref, cur, bins):
    """PSI on reference-quantile bins plus an overflow bin on each side (see psi.rs)."""
    ref = np.sort(np.asarray(ref, dtype=float))
    cur = np.asarray(cur, dtype=float)
    inner = np.quantile(ref, np.arange(1, bins) / bins)  # numpy default: linear (type 7)
    edges = np.unique(np.concatenate([[ref[0]], inner, [ref[-1]]]))
    m = max(len(edges) - 1, 1)

    def shares(x):
        idx = np.searchsorted(edges, x, side="right")
        b = np.where(x < edges[0], 0, np.where(x > edges[-1], m + 1, 1 + np.minimum(idx - 1, m - 1)))
        return np.bincount(b, minlength=m + 2) / len(x)

    r, c = shares(ref), shares(cur)
    rf, cf = np.maximum(r, PSI_EPS), np.maximum(c, PSI_EPS)
    value = float(np.sum((cf - rf) * np.log(cf / rf)))
    return value, edges, r, c


def psi_fixture():
    cases = []

    def case(name, ref, cur, bins):
        value, edges, r, c = psi_reference(values(ref), values(cur), bins)
        cases.append({"name": name, "reference": ref, "current": cur, "bins": bins, "value": value,
                      "edges": edges.tolist(), "reference_share": r.tolist(), "current_share": c.tolist()})

    case("normal_null", gen(60, 5000), gen(61, 1000), 10)
    case("normal_shift", gen(62, 5000), gen(63, 1000, loc=0.5), 10)
    case("normal_outside_range", gen(64, 2000), gen(65, 500, loc=4.0), 10)
    case("levels_dedup_edges", gen(66, 3000, "levels", levels=4), gen(67, 800, "levels", levels=5), 10)
    case("reference_all_equal", [2.0] * 50, [1.0, 2.0, 2.0, 3.0, 2.0], 10)
    case("reference_n1", [1.5], [1.0, 1.5, 2.0], 10)
    case("uniform_20_bins", gen(68, 4000, "uniform"), gen(69, 4000, "uniform", scale=0.8), 20)
    case("two_bins", gen(70, 100), gen(71, 100, loc=0.1), 2)
    write("psi", {"note": "numpy: reference-quantile bins (np.quantile linear), overflow bins, eps", "epsilon": PSI_EPS,
                  "cases": cases})


# ---------------------------------------------------------------- Wilson


def wilson_fixture():
    cases = []
    for k, n in [(0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (50, 100), (1, 1000), (999, 1000), (37, 365),
                 (4321, 10000), (1, 2)]:
        for conf in [0.8, 0.9, 0.95, 0.99, 0.999]:
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
            cases.append({"k": k, "n": n, "confidence": conf, "lo": float(ci.low), "hi": float(ci.high)})
    write("wilson", {"note": "scipy.stats.binomtest(k, n).proportion_ci(conf, method='wilson') (no continuity correction)",
                     "cases": cases})


# ---------------------------------------------------------------- Page-Hinkley

PH_PARAMS = {"min_instances": 30, "delta": 0.005, "threshold": 10.0, "alpha": 0.9999}


def error_stream(seed, segments):
    rng = Rng(seed)
    return [1.0 if rng.uniform() < rate else 0.0 for length, rate in segments for _ in range(length)]


def page_hinkley_fixture():
    streams = []

    def stream(name, seed, segments, trace=0):
        xs = error_stream(seed, segments)
        ph = PageHinkley(mode="up", **PH_PARAMS)
        detections, statistic = [], []
        for i, x in enumerate(xs):
            ph.update(x)
            if ph.drift_detected:
                detections.append(i)
            if i < trace:
                statistic.append(ph._sum_increase - ph._min_increase)
        streams.append({"name": name, "seed": seed, "segments": segments, "detections": detections,
                        "statistic": statistic})

    stream("rate_05_then_35", 1, [[1000, 0.05], [1000, 0.35]], trace=300)
    stream("stationary_05", 2, [[3000, 0.05]])
    stream("stationary_35", 3, [[3000, 0.35]])
    stream("rate_10_then_60_then_10", 4, [[500, 0.10], [400, 0.60], [800, 0.10]], trace=120)
    stream("all_errors", 5, [[200, 1.0]], trace=60)
    write("page_hinkley", {"note": "river.drift.PageHinkley(mode='up'); streams: x = 1.0 if uniform() < rate",
                           "params": PH_PARAMS, "streams": streams})


# ---------------------------------------------------------------- calibration


def calibration_fixture():
    isotonic = []

    def iso_case(name, x, y, query):
        model = IsotonicRegression(out_of_bounds="clip").fit(x, y)
        isotonic.append({"name": name, "x": x, "y": y, "query": query,
                         "prediction": [float(v) for v in model.predict(np.asarray(query, dtype=float))]})

    rng = Rng(80)
    conf = [round(0.5 + 0.5 * rng.uniform(), 2) for _ in range(300)]  # rounded: many ties in x
    correct = [1.0 if rng.uniform() < c * c else 0.0 for c in conf]
    query = [0.0, 0.49, 0.5, 0.505, 0.61, 0.7777, 0.9, 0.955, 0.99, 1.0, 1.2]
    iso_case("confidence_vs_correct", conf, correct, query)
    iso_case("decreasing_pools_to_mean", [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [0.0, 2.5, 9.0])
    iso_case("already_increasing", [0.1, 0.2, 0.4, 0.8], [0.0, 0.5, 0.6, 1.0], [0.15, 0.3, 0.6, 0.79])
    iso_case("all_x_equal", [0.7, 0.7, 0.7], [1.0, 0.0, 1.0], [0.1, 0.7, 0.9])
    iso_case("single_point", [0.3], [1.0], [0.0, 0.3, 1.0])
    iso_case("unsorted_with_ties", [3.0, 1.0, 2.0, 1.0, 3.0, 2.0], [1.0, 0.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.5, 2.5, 3.0])

    model = IsotonicRegression(out_of_bounds="clip").fit(conf, correct)
    rng = Rng(81)
    current = [0.5 + 0.45 * rng.uniform() for _ in range(200)]
    cbpe = float(np.mean(model.predict(np.asarray(current))))

    atc = []

    def atc_case(name, held_conf, held_correct, cur):
        held_conf = np.asarray(held_conf, dtype=float)
        k, n = int(np.sum(held_correct)), len(held_correct)
        threshold = float(np.sort(held_conf)[n - k - 1])  # k < n in every case here
        atc.append({"name": name, "held_out_confidence": held_conf.tolist(),
                    "held_out_correct": [bool(c) for c in held_correct], "current": cur,
                    "threshold": threshold, "estimate": float(np.mean(np.asarray(cur) > threshold)),
                    "held_out_estimate": float(np.mean(held_conf > threshold))})

    atc_case("garg_max_confidence", conf, [c == 1.0 for c in correct], current)
    atc_case("no_ties", [0.55, 0.6, 0.7, 0.8, 0.9, 0.95], [False, True, False, True, True, True],
             [0.5, 0.65, 0.75, 0.85, 0.99])
    atc_case("none_correct", [0.6, 0.7, 0.8], [False, False, False], [0.5, 0.79, 0.8, 0.81])
    write("calibration", {"note": "sklearn IsotonicRegression(out_of_bounds='clip'); CBPE = mean calibrated "
                                  "confidence; ATC threshold = sorted(conf)[n-k-1], estimate = mean(conf > t)",
                          "isotonic": isotonic, "cbpe": {"fit": "confidence_vs_correct", "current": current,
                                                         "estimate": cbpe}, "atc": atc})


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    ks_fixture()
    kstwo_fixture()
    special_fixture()
    chi2_fixture()
    psi_fixture()
    wilson_fixture()
    page_hinkley_fixture()
    calibration_fixture()


if __name__ == "__main__":
    main()
