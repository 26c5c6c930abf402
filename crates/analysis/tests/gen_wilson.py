"""Regenerates wilson.json with an implementation independent of liftoff's Rust code
(Python's standard library only). Run: python3 gen_wilson.py > wilson.json

z        = NormalDist().inv_cdf(confidence)                   (one-sided)
bounds   = the Wilson score interval, found by bisection on the score test
           |k/n - p| <= z * sqrt(p (1 - p) / n), not by its closed form
triggers = a condition's share (failed requests; for pQ, requests slower than the
           threshold, as bucket upper bounds) against its target (the threshold; for pQ,
           1 - Q), decided as liftoff's docs/plan.md says: crossed when the bound on the
           side that must clear the target does (lower for > and >=, upper for < and
           <=) in a window of at least min_requests; held back when only the value does

python3 gen_wilson.py --numbers prints the figures quoted in src/trigger.rs (exact
binomial sums: the A/A false-rollback odds and how fast a 30%-failing candidate is caught).
"""
import json
import math
import sys
from statistics import NormalDist


def z_of(confidence):
    return NormalDist().inv_cdf(confidence)


def score_rejects(k, n, z, p):
    return (k / n - p) ** 2 > z * z * p * (1 - p) / n


def bisect(lo, hi, inside_at_hi):
    # The boundary between rejected and accepted shares, to double precision.
    for _ in range(200):
        mid = (lo + hi) / 2
        if inside_at_hi(mid):
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def wilson(k, n, z):
    p_hat = k / n
    lower = 0.0 if k == 0 else bisect(0.0, p_hat, lambda p: not score_rejects(k, n, z, p))
    upper = 1.0 if k == n else 1.0 - bisect(0.0, 1.0 - p_hat,
                                            lambda q: not score_rejects(k, n, z, 1.0 - q))
    return lower, upper


def holds(op, value, target):
    return {"<": value < target, "<=": value <= target,
            ">": value > target, ">=": value >= target}[op]


def decide(op, k, n, requests, target, confidence, min_requests, value_holds):
    """(state, bound) for a share k/n whose condition is `share op target`."""
    if n == 0:
        return ("clear" if not value_holds else "held_back"), None
    lower, upper = wilson(k, n, z_of(confidence))
    bound = lower if op in (">", ">=") else upper
    if not value_holds:
        return "clear", bound
    if requests < min_requests or not holds(op, bound, target):
        return "held_back", bound
    return "crossed", bound


THRESHOLDS = {"5%": 0.05, "1%": 0.01, "20%": 0.20, "50%": 0.50}


def error_rate_case(op, threshold, requests, failed, confidence, min_requests):
    target = THRESHOLDS[threshold]
    value_holds = requests > 0 and holds(op, failed / requests, target)
    state, bound = decide(op, failed, requests, requests, target, confidence,
                          min_requests, value_holds)
    return {"condition": f"error_rate {op} {threshold}", "requests": requests,
            "failed": failed, "latency": [], "confidence": confidence,
            "min_requests": min_requests, "state": state, "bound": bound}


def quantile(latency, q):
    total = sum(c for _, c in latency)
    rank = max(math.ceil(q * total), 1)
    seen = 0
    for bound, count in latency:
        seen += count
        if seen >= rank:
            return bound
    return None


def latency_case(metric, op, threshold_s, latency, confidence, min_requests):
    q = {"p50": 0.50, "p95": 0.95, "p99": 0.99}[metric]
    total = sum(c for _, c in latency)
    value = quantile(latency, q) if total else None
    value_holds = value is not None and holds(op, value, threshold_s)
    # pQ > X: more than 1 - Q of requests slower than X. pQ >= X: of X or slower.
    # pQ < X: at most 1 - Q of X or slower.  pQ <= X: at most 1 - Q slower than X.
    if op in (">", "<="):
        slow = sum(c for b, c in latency if b > threshold_s)
    else:
        slow = sum(c for b, c in latency if b >= threshold_s)
    share_op = ">" if op in (">", ">=") else "<="
    state, bound = decide(share_op, slow, total, total, 1 - q, confidence, min_requests,
                          value_holds)
    text = f"{int(threshold_s * 1000)}ms" if threshold_s < 1 else f"{threshold_s:g}s"
    return {"condition": f"{metric} {op} {text}", "requests": total, "failed": 0,
            "latency": latency, "confidence": confidence, "min_requests": min_requests,
            "state": state, "bound": bound}


def vectors():
    confidences = [0.01, 0.3, 0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 0.9999, 0.99999,
                   0.999999]
    z_cases = [{"confidence": c, "z": z_of(c)} for c in confidences]

    wilson_cases = []
    for n in [1, 2, 5, 10, 13, 18, 40, 80, 100, 1000, 123457]:
        ks = sorted({0, 1, n // 50, n // 10, (3 * n) // 10, n // 2, n - 1, n})
        for k in ks:
            for c in [0.95, 0.999, 0.99999]:
                lower, upper = wilson(k, n, z_of(c))
                wilson_cases.append({"k": k, "n": n, "z": z_of(c), "lower": lower,
                                     "upper": upper})

    triggers = []
    default = (0.99999, 10)
    # Issue 18's A/A run and its 30% candidate, around the edges of evidence.
    for requests, failed in [(0, 0), (5, 5), (9, 9), (10, 1), (10, 3), (10, 4), (13, 4),
                             (18, 4), (18, 5), (19, 1), (40, 2), (40, 4), (40, 12),
                             (80, 2), (80, 8), (80, 9), (80, 24), (1000, 70)]:
        triggers.append(error_rate_case(">", "5%", requests, failed, *default))
    for confidence, min_requests in [(0.95, 10), (0.999, 10), (0.99999, 20), (0.5, 0)]:
        for requests, failed in [(10, 1), (10, 2), (18, 4), (19, 4), (40, 5)]:
            triggers.append(error_rate_case(">", "5%", requests, failed, confidence,
                                            min_requests))
    for op, threshold, requests, failed in [(">=", "20%", 20, 4), (">=", "20%", 200, 80),
                                            (">=", "50%", 4, 2), (">", "1%", 500, 25),
                                            (">", "1%", 300, 15), ("<", "50%", 100, 10),
                                            ("<", "50%", 20, 8), ("<=", "20%", 400, 40),
                                            ("<", "5%", 10, 0), ("<", "5%", 1000, 1)]:
        triggers.append(error_rate_case(op, threshold, requests, failed, *default))

    fast_and_slow = [
        [[0.05, 95], [0.25, 3], [2.5, 2]],
        [[0.05, 60], [0.25, 10], [2.5, 30]],
        [[0.05, 9], [2.5, 1]],
        [[0.05, 8], [2.5, 2]],
        [[0.05, 400], [0.5, 560], [1.0, 30], [2.0, 6], [4.0, 4]],
        [],
    ]
    for latency in fast_and_slow:
        for metric, op, threshold in [("p99", ">", 2.0), ("p95", ">", 0.25),
                                      ("p95", ">=", 0.25), ("p50", ">", 0.05),
                                      ("p50", "<", 0.25), ("p95", "<=", 1.0)]:
            triggers.append(latency_case(metric, op, threshold, latency, *default))
    return {"z": z_cases, "wilson": wilson_cases, "triggers": triggers}


def binomial_step(dist, p):
    out = {}
    for k, pr in dist.items():
        out[k] = out.get(k, 0.0) + pr * (1 - p)
        out[k + 1] = out.get(k + 1, 0.0) + pr * p
    return out


def crossing(p, fires, first, last):
    """P(a window growing from 0 requests fires at some size in [first, last]), checked
    after every request; and, per request count, the cumulative odds."""
    dist, crossed, cumulative = {0: 1.0}, 0.0, {}
    for n in range(1, last + 1):
        dist = binomial_step(dist, p)
        if n >= first:
            for k in [k for k in dist if fires(k, n)]:
                crossed += dist.pop(k)
        cumulative[n] = crossed
    return crossed, cumulative


def numbers():
    threshold, base, bad, floor = 0.05, 0.02, 0.30, 10
    print("A/A: both fail 2%, trigger error_rate > 5%, floor 10 requests")
    print(f"  value alone: P(fire in the first 80 requests) = "
          f"{crossing(base, lambda k, n: k / n > threshold, floor, 80)[0]:.3f}")
    for confidence in [0.95, 0.999, 0.9999, 0.99999]:
        z = z_of(confidence)
        fires = lambda k, n: wilson_lower(k, n, z) > threshold  # noqa: E731
        growing = crossing(base, fires, floor, 80)[0]
        full = max(tail_over(n, base, z, threshold) for n in range(60, 101))
        _, caught = crossing(bad, fires, floor, 400)
        by = {q: next(n for n in sorted(caught) if caught[n] >= q) for q in (0.5, 0.9, 0.99)}
        print(f"  {confidence:.3%} (z {z:.3f}): {growing:.2e} per launch while the window "
              f"fills, <= {full:.1e} per full-window evaluation; 50 launches x 10/s x 30 s: "
              f"<= {50 * growing + 15000 * full:.3g} false rollbacks expected; 30% caught by "
              "request "
              + ", ".join(f"{n} ({n / 40:.2f} s at 40/s) in {q:.0%}" for q, n in by.items()))


def wilson_lower(k, n, z):
    p = k / n
    z2 = z * z
    return (p + z2 / (2 * n) - z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)


def tail_over(n, p, z, threshold):
    k_min = next((k for k in range(n + 1) if wilson_lower(k, n, z) > threshold), None)
    if k_min is None:
        return 0.0
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k_min, n + 1))


if __name__ == "__main__":
    if sys.argv[1:] == ["--numbers"]:
        numbers()
    else:
        json.dump(vectors(), sys.stdout, indent=1)
        print()
