"""Hypothesis strategies: a valid schedule of every family, with parameters drawn
over wide ranges (tiny and huge rates, fractional step sizes, long cycles)."""

from __future__ import annotations

from hypothesis import strategies as st

from lrlab import schedules as S

# Rates from 0 up to 1e6 (values far beyond any real learning rate, still away from
# float64 overflow) and step counts from below one step to a hundred million.
rates = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False),
)
positive_rates = st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False)
# Factors (gammas, decay rates) over the whole range, and close to 1, where a decay is
# still far from 0 after millions of steps.
factors = st.one_of(
    st.floats(min_value=1e-6, max_value=1.0, allow_nan=False, exclude_min=False),
    st.floats(min_value=0.99, max_value=1.0, allow_nan=False),
)
step_counts = st.one_of(
    st.integers(min_value=1, max_value=10**8),
    st.floats(min_value=0.5, max_value=1e8, allow_nan=False),
)
# Step counts up to 2**40 (about 10**12) for the families that take one step count.
large_step_counts = st.one_of(step_counts, st.integers(min_value=10**8, max_value=2**40))
# Powers: fractional, whole (3 is a usual one) and large.
powers = st.one_of(
    st.floats(min_value=0.01, max_value=10.0),
    st.integers(min_value=1, max_value=100).map(float),
    st.floats(min_value=10.0, max_value=1000.0),
)
whole_steps = st.integers(min_value=1, max_value=10**6)
flags = st.booleans()


@st.composite
def constant(draw):
    return S.constant(draw(rates))


@st.composite
def step_decay(draw):
    return S.step_decay(draw(rates), step_size=draw(step_counts), gamma=draw(factors))


@st.composite
def multistep(draw):
    milestones = sorted(draw(st.lists(st.integers(0, 10**7), min_size=1, max_size=6)))
    return S.multistep(draw(rates), milestones=milestones, gamma=draw(factors))


@st.composite
def exponential(draw):
    return S.exponential(
        draw(rates), decay_rate=draw(factors), decay_steps=draw(large_step_counts), staircase=draw(flags)
    )


@st.composite
def inverse_time(draw):
    decay_rate = draw(st.floats(min_value=0.0, max_value=1e3, allow_nan=False))
    return S.inverse_time(
        draw(rates), decay_rate=decay_rate, decay_steps=draw(step_counts), staircase=draw(flags)
    )


@st.composite
def polynomial(draw):
    return S.polynomial(
        draw(rates), total_steps=draw(large_step_counts), final_lr=draw(rates), power=draw(powers)
    )


@st.composite
def linear(draw):
    return S.linear(draw(rates), draw(rates), total_steps=draw(step_counts))


@st.composite
def cosine(draw):
    return S.cosine(draw(rates), total_steps=draw(step_counts), final_lr=draw(rates))


@st.composite
def cosine_restarts(draw):
    period_mult = draw(st.one_of(st.just(1.0), st.sampled_from([2.0, 3.0]), st.floats(1.0, 10.0)))
    return S.cosine_restarts(
        draw(rates),
        period=draw(step_counts),
        period_mult=period_mult,
        decay=draw(factors),
        final_lr=draw(rates),
    )


@st.composite
def cyclic(draw):
    base_lr = draw(rates)
    max_lr = base_lr + draw(rates)
    down = draw(st.one_of(st.none(), step_counts))
    return S.cyclic(
        base_lr,
        max_lr,
        step_size=draw(step_counts),
        step_size_down=down,
        mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        gamma=draw(factors),
        shape=draw(st.sampled_from(["triangle", "sine"])),
        cycle_decay=draw(factors),
        cycles=draw(st.one_of(st.none(), st.integers(1, 1000))),
    )


@st.composite
def one_cycle(draw):
    total = draw(st.integers(min_value=10, max_value=10**7))
    three_phase = draw(flags)
    # pct_start * total > 1, and with three phases 2 * pct * total - 2 < total - 1.
    low = 1.01 / total
    high = 0.49 if three_phase else 0.99
    pct = draw(st.floats(min_value=max(low, 0.02), max_value=high))
    return S.one_cycle(
        draw(positive_rates),
        total_steps=total,
        pct_start=pct,
        anneal=draw(st.sampled_from(["cos", "linear"])),
        div_factor=draw(st.floats(min_value=1.0, max_value=1e4)),
        final_div_factor=draw(st.floats(min_value=1.0, max_value=1e5)),
        three_phase=three_phase,
    )


@st.composite
def inverse_sqrt(draw):
    warm = draw(st.one_of(st.integers(1, 10**6), st.floats(1.0, 1e6)))
    return S.inverse_sqrt(draw(rates), warmup_steps=warm)


@st.composite
def wsd(draw):
    total = draw(st.integers(min_value=2, max_value=10**8))
    decay = draw(st.integers(min_value=1, max_value=total))
    warm = draw(st.integers(min_value=0, max_value=total - decay))
    return S.wsd(
        draw(rates),
        total_steps=total,
        warmup_steps=warm,
        decay_steps=decay,
        final_lr=draw(rates),
        decay_shape=draw(st.sampled_from(["linear", "cosine", "1-sqrt"])),
    )


LEAVES = {
    "constant": constant(),
    "step_decay": step_decay(),
    "multistep": multistep(),
    "exponential": exponential(),
    "inverse_time": inverse_time(),
    "polynomial": polynomial(),
    "linear": linear(),
    "cosine": cosine(),
    "cosine_restarts": cosine_restarts(),
    "cyclic": cyclic(),
    "one_cycle": one_cycle(),
    "inverse_sqrt": inverse_sqrt(),
    "wsd": wsd(),
}
leaves = st.one_of(*LEAVES.values())


@st.composite
def warmup(draw):
    steps = draw(st.one_of(st.just(0), st.integers(1, 10**6), st.floats(0.5, 1e6)))
    return S.warmup(draw(leaves), steps=steps, start_lr=draw(rates))


@st.composite
def sequence(draw):
    parts = draw(st.lists(st.one_of(leaves, warmup()), min_size=1, max_size=4))
    bounds = sorted(draw(st.sets(st.integers(1, 10**7), min_size=len(parts) - 1, max_size=len(parts) - 1)))
    return S.sequence(parts, boundaries=bounds)


FAMILY_STRATEGIES = {**LEAVES, "warmup": warmup(), "sequence": sequence()}
any_schedule = st.one_of(*FAMILY_STRATEGIES.values())

# Steps: the first ten thousand (where most schedules still change), integers,
# fractions, and the far future.
step_values = st.one_of(
    st.integers(min_value=0, max_value=10**4),
    st.integers(min_value=0, max_value=10**7),
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
