"""Replenishment cadence: when will a customer buy a product again, and how likely is it soon.

The model has two layers. Both see only purchases strictly before ``as_of``.

1. An empirical-Bayes survival model of the gap between purchases of one customer-product pair.
   A gap is the number of days between two consecutive purchase days of the pair. We model
   ``log gap = theta_pair + beta * log(units bought at the start of the gap) + noise`` with
   noise ~ N(0, sigma^2): log-normal gaps, because inter-purchase times are positive and
   right-skewed, and because a log scale makes "buying 2 units lasts twice as long" additive.
   ``beta`` is the quantity elasticity: 1 means units are used up at a steady rate. It is
   estimated from within-pair variation (a customer who sometimes buys 1 and sometimes 3),
   shrunk toward 1, so a shop of consumables gets proportional gaps and a gift shop, where
   quantity says little about the next visit, gets almost none. Each pair's level
   ``theta_pair`` is drawn from its product's distribution N(mu_product, tau^2) and each
   product's ``mu_product`` from N(prior, omega^2), where the prior is ``log(usage_days)`` when
   the products table gives one and the shop-wide mean otherwise. All variances are moment
   estimates from the shop's own history, so the posterior for a pair is the usual precision
   weighted mean: a customer with one short gap moves only partly away from the product, one
   with ten consistent gaps is mostly their own. A product without repeat history falls back
   to its prior, i.e. ``usage_days``.

   Time already elapsed matters: with ``e`` days since the last purchase and no purchase yet,
   the probability of buying in the next window is the hazard of the gap distribution over
   that window, ``(S(e-1) - S(e+w-1)) / S(e-1)``, not the unconditional chance. A pair can
   also have stopped for good (the customer switched brand or only ever bought once); the
   prior chance that it is still "alive" after ``n`` purchase days is ``n / (n + 1)``
   (beta-geometric with a uniform prior), and a long silence lowers it by Bayes' rule:
   ``pi S(e-1) / (pi S(e-1) + 1 - pi)``. The predicted next purchase date is the median of the
   gap given that it is longer than what has already elapsed, so an overdue pair is always
   predicted in the future and its date moves with every silent day.

2. A small logistic calibration fitted on the shop's own recent past. Shops differ in how
   much of a pair's behaviour is cadence and how much is the customer's general activity, so
   we fit ``P(buy in window)`` on a handful of features (``FEATURES``): the survival log-odds
   from layer 1; the pair's purchase days, days elapsed, how overdue it is in standard
   deviations and its age (purchase frequency is days over age); the share of the customer's
   order days that include the product; the customer's order days, days since their last
   order of anything and age (is the customer still shopping at all); and how many customers
   bought the product in the last four weeks (a product nobody buys any more is out of stock,
   discontinued or out of season, however due its buyers are). The labels come from the
   ``training_windows`` windows just before ``as_of`` (each ends on or before ``as_of``;
   features for each are computed as of that window's own start), so the pipeline and the
   backtest run one and the same procedure without leakage. The coefficients have a Gaussian
   prior centred on "use the survival probability as is" (weight 1 on its log-odds, 0
   elsewhere), so a shop with too little history gets layer 1 and a shop with plenty gets a
   fit to its own data. The fit is a few Newton steps over at most ``MAX_TRAINING_ROWS`` rows
   (all positives and a fixed-seed sample of negatives, weighted back), so it stays cheap at a
   million customers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import optimize, special

# Inside this module customers, products and customer-product pairs are dense integer codes
# in sorted-id order: grouping and joining on one integer is several times cheaper than on
# two strings at a million customers.
PAIR = ["customer", "product"]

# The gap assumed for a product when the shop has no repeat purchases at all and no
# usage_days: a month is the most common replenishment cycle for consumables.
DEFAULT_GAP_DAYS = 30.0
# Prior strength for the quantity elasticity, in units of sum of squared within-pair
# log-quantity deviations: about twenty "bought twice as much" gaps before the data win.
ELASTICITY_PRIOR_WEIGHT = 10.0
# Floors keep a perfectly regular (often synthetic) history from giving zero variance.
MIN_WITHIN_VAR = 0.02
MIN_BETWEEN_VAR = 0.02
DEFAULT_WITHIN_VAR = 0.25
DEFAULT_BETWEEN_VAR = 0.25
# Logistic layer: training windows before as_of, rows kept, prior precision on coefficients.
TRAINING_WINDOWS = 4
# A big shop has plenty of labels in its last window or two; older windows then only cost time.
ENOUGH_POSITIVES = 20_000
MAX_TRAINING_ROWS = 200_000
MIN_TRAINING_POSITIVES = 30
PRIOR_PRECISION = 1.0
# Training candidates, like the backtest's: pairs bought in the year before a window.
LOOKBACK_DAYS = 365
# "Is anyone buying this product now": out-of-stock, discontinued and out-of-season products
# are not bought again, however due the customer is.
RECENT_DAYS = 28
LOGIT_CLIP = 12.0


@dataclass(frozen=True)
class GapModel:
    """Shop-level hyperparameters of the gap distribution, estimated as of one date."""

    elasticity: float  # beta: d log gap / d log units
    within_var: float  # sigma^2: variance of one pair's normalized log gaps
    between_var: float  # tau^2: variance of pair levels around their product
    global_mean: float  # mean normalized log gap over pairs, the prior without usage_days


@dataclass(frozen=True)
class Purchases:
    """Purchase days keyed by integer codes, with the tables that map codes back to ids."""

    daily: pl.DataFrame  # pair, customer, product, day, quantity; sorted by pair then day
    customers: pl.DataFrame  # customer, customer_id
    products: pl.DataFrame  # product, product_id


def encode_purchases(events: pl.DataFrame, before: dt.date) -> Purchases:
    """One row per pair and purchase day strictly before ``before``, sorted by pair and day."""
    daily = (
        events.lazy()
        .select(
            pl.col("customer_id").cast(pl.String),
            pl.col("product_id").cast(pl.String),
            pl.col("day").cast(pl.Date),
            pl.col("quantity").cast(pl.Float64),
        )
        .filter((pl.col("day") < before) & (pl.col("quantity") > 0))
        .group_by("customer_id", "product_id", "day")
        .agg(pl.col("quantity").sum())
        .collect()
    )
    # Codes follow the sorted ids, so results do not depend on the order of the input rows.
    customers = (
        daily.select(pl.col("customer_id").unique().sort())
        .with_row_index("customer")
        .with_columns(pl.col("customer").cast(pl.UInt32))
    )
    products = (
        daily.select(pl.col("product_id").unique().sort())
        .with_row_index("product")
        .with_columns(pl.col("product").cast(pl.UInt32))
    )
    daily = (
        daily.join(customers, on="customer_id")
        .join(products, on="product_id")
        .sort(*PAIR, "day")
        .select(pl.struct(PAIR).rle_id().alias("pair"), *PAIR, "day", "quantity")
    )
    return Purchases(daily, customers, products)


def _gaps(daily: pl.DataFrame) -> pl.DataFrame:
    """Consecutive gaps per pair with the log units bought at the start of each gap."""
    # daily is sorted by pair then day, so comparing neighbours is all a gap takes.
    same_pair = pl.col("pair") == pl.col("pair").shift(1)
    return (
        daily.lazy()
        .with_columns(
            (pl.col("day") - pl.col("day").shift(1)).dt.total_days().alias("gap"),
            pl.col("quantity").shift(1).log().alias("log_q"),
            same_pair.alias("same_pair"),
        )
        .filter(pl.col("same_pair"))
        .select("pair", "product", pl.col("gap").cast(pl.Float64).log().alias("log_gap"), "log_q")
        .collect()
    )


def _usage_prior(products: pl.DataFrame | None, codes: pl.DataFrame) -> pl.DataFrame:
    """log(usage_days) per product code, for the products that give one."""
    if products is None or "usage_days" not in products.columns:
        return pl.DataFrame(schema={"product": pl.UInt32, "log_usage": pl.Float64})
    return (
        products.select(
            pl.col("product_id").cast(pl.String),
            pl.col("usage_days").cast(pl.Float64, strict=False),
        )
        .filter(pl.col("usage_days") > 0)
        .unique("product_id", keep="last", maintain_order=True)
        .join(codes, on="product_id")
        .select("product", pl.col("usage_days").log().alias("log_usage"))
    )


def fit_gap_model(
    daily: pl.DataFrame, usage: pl.DataFrame
) -> tuple[GapModel, pl.DataFrame, pl.DataFrame]:
    """Estimate the hierarchy; return the model, product means and pair gap summaries."""
    gaps = _gaps(daily)

    # Elasticity from within-pair co-variation of log quantity and log gap, shrunk toward 1.
    # Within-pair sums of squares come from per-pair sums: S_xy = sum(xy) - sum(x) sum(y) / k.
    per_pair = gaps.group_by("pair").agg(
        pl.col("product").first(),
        pl.len().alias("k"),
        pl.col("log_q").sum().alias("sq"),
        pl.col("log_gap").sum().alias("sg"),
        (pl.col("log_q") * pl.col("log_gap")).sum().alias("sqg"),
        (pl.col("log_q") ** 2).sum().alias("sqq"),
        (pl.col("log_gap") ** 2).sum().alias("sgg"),
    )
    sxy, sxx = per_pair.select(
        (pl.col("sqg") - pl.col("sq") * pl.col("sg") / pl.col("k")).sum().alias("sxy"),
        (pl.col("sqq") - pl.col("sq") ** 2 / pl.col("k")).sum().alias("sxx"),
    ).row(0)
    sxy, sxx = sxy or 0.0, sxx or 0.0
    beta = float(np.clip((sxy + ELASTICITY_PRIOR_WEIGHT) / (sxx + ELASTICITY_PRIOR_WEIGHT), 0, 1))

    # Normalized log gap r = log_gap - beta * log_q; its per-pair mean and sum of squares.
    pairs = per_pair.select(
        "pair",
        "product",
        "k",
        ((pl.col("sg") - beta * pl.col("sq")) / pl.col("k")).alias("r_bar"),
        (
            pl.col("sgg")
            - 2 * beta * pl.col("sqg")
            + beta**2 * pl.col("sqq")
            - (pl.col("sg") - beta * pl.col("sq")) ** 2 / pl.col("k")
        ).alias("ss"),
    )
    multi = pairs.filter(pl.col("k") >= 2)
    dof = float(multi["k"].sum() - multi.height) if multi.height else 0.0
    sigma2 = float(multi["ss"].sum()) / dof if dof > 0 else DEFAULT_WITHIN_VAR
    sigma2 = max(sigma2, MIN_WITHIN_VAR)

    if pairs.height:
        global_mean = float(pairs["r_bar"].mean())
    elif usage.height:
        global_mean = float(usage["log_usage"].mean())
    else:
        global_mean = float(np.log(DEFAULT_GAP_DAYS))

    prod = pairs.group_by("product").agg(
        pl.len().alias("n_pairs"),
        pl.col("r_bar").mean().alias("mu_raw"),
        (sigma2 / pl.col("k")).mean().alias("noise"),
    )
    # tau^2: spread of pair means around their product's mean, less the noise in those means.
    spread = (
        pairs.join(prod, on="product")
        .filter(pl.col("n_pairs") >= 2)
        .select(
            (
                (pl.col("r_bar") - pl.col("mu_raw")) ** 2
                * pl.col("n_pairs")
                / (pl.col("n_pairs") - 1)
            )
            .mean()
            .alias("v"),
            (sigma2 / pl.col("k")).mean().alias("noise"),
        )
    )
    v, noise = spread.row(0)
    tau2 = max(v - noise, MIN_BETWEEN_VAR) if v is not None else DEFAULT_BETWEEN_VAR

    prod = prod.join(usage, on="product", how="full", coalesce=True).with_columns(
        pl.col("n_pairs").fill_null(0),
        pl.col("log_usage").fill_null(global_mean).alias("prior"),
        ((tau2 + pl.col("noise")) / pl.col("n_pairs")).alias("sampling_var"),
    )
    # omega^2: spread of product means around their priors, less their sampling noise.
    with_data = prod.filter(pl.col("n_pairs") > 0)
    if with_data.height >= 2:
        omega2 = float(
            with_data.select(
                ((pl.col("mu_raw") - pl.col("prior")) ** 2 - pl.col("sampling_var")).mean()
            ).item()
        )
        omega2 = max(omega2, MIN_BETWEEN_VAR)
    else:
        omega2 = DEFAULT_BETWEEN_VAR
    prod = prod.select(
        "product",
        pl.when(pl.col("n_pairs") > 0)
        .then(
            pl.col("prior")
            + omega2 / (omega2 + pl.col("sampling_var")) * (pl.col("mu_raw") - pl.col("prior"))
        )
        .otherwise(pl.col("prior"))
        .alias("mu"),
    )
    model = GapModel(beta, sigma2, tau2, global_mean)
    return model, prod, pairs.select("pair", "k", "r_bar")


def _log_sf(x: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """log P(gap > x) for a log-normal gap; P(gap > 0) = 1."""
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(x, 0.0)) - m) / s
    return np.where(x <= 0, 0.0, special.log_ndtr(-z))


def pair_state(
    daily: pl.DataFrame,
    usage: pl.DataFrame,
    as_of: dt.date,
    window_days: int,
) -> pl.DataFrame:
    """Every pair's posterior gap distribution, elapsed time, survival probability and features.

    ``daily`` holds the purchases before ``as_of`` (see :func:`encode_purchases`) and
    ``usage`` the log(usage_days) prior per product code.
    """
    model, prod, gap_pairs = fit_gap_model(daily, usage)
    pairs = daily.group_by("pair").agg(
        pl.col("customer").first(),
        pl.col("product").first(),
        pl.col("day").max().alias("last_purchase_date"),
        pl.col("day").min().alias("first_purchase_date"),
        pl.len().alias("purchase_days"),
        # Rows keep their order within a group, and daily is sorted by day.
        pl.col("quantity").last().alias("last_quantity"),
    )
    customers = daily.group_by("customer").agg(
        pl.col("day").n_unique().alias("customer_days"),
        pl.col("day").max().alias("customer_last"),
        pl.col("day").min().alias("customer_first"),
    )
    recent = (
        daily.filter(pl.col("day") >= as_of - dt.timedelta(days=RECENT_DAYS))
        .group_by("product")
        .agg(pl.col("customer").n_unique().alias("recent_buyers"))
    )
    tau2, sigma2 = model.between_var, model.within_var

    def days_to(column: str) -> pl.Expr:
        return (pl.lit(as_of) - pl.col(column)).dt.total_days()

    state = (
        pairs.join(gap_pairs, on="pair", how="left")
        .join(prod, on="product", how="left")
        .join(customers, on="customer", how="left")
        .join(recent, on="product", how="left")
        .with_columns(
            pl.col("k").fill_null(0),
            pl.col("r_bar").fill_null(0.0),
            pl.col("mu").fill_null(model.global_mean),
            pl.col("recent_buyers").fill_null(0),
        )
        .with_columns((1.0 / (1.0 / tau2 + pl.col("k") / sigma2)).alias("post_var"))
        .with_columns(
            (
                pl.col("post_var") * (pl.col("mu") / tau2 + pl.col("k") * pl.col("r_bar") / sigma2)
                + model.elasticity * pl.col("last_quantity").log()
            ).alias("log_gap_mean"),
            (pl.col("post_var") + sigma2).sqrt().alias("log_gap_sd"),
            days_to("last_purchase_date").alias("elapsed_days"),
            days_to("first_purchase_date").alias("pair_tenure"),
            days_to("customer_last").alias("customer_elapsed_days"),
            days_to("customer_first").alias("customer_tenure"),
        )
        # A fixed row order makes the training subsample, and so the fit, reproducible.
        .sort("pair")
    )
    m = state["log_gap_mean"].to_numpy()
    s = state["log_gap_sd"].to_numpy()
    e = state["elapsed_days"].to_numpy().astype(np.float64)
    n = state["purchase_days"].to_numpy().astype(np.float64)
    # The next gap G in whole days is at least e, since nothing was bought on the days before
    # as_of; with G = ceil(continuous gap), G >= e means continuous gap > e - 1.
    log_s_now = _log_sf(e - 1, m, s)
    log_s_end = _log_sf(e + window_days - 1, m, s)
    p_timing = -np.expm1(log_s_end - log_s_now)
    still_buying = n / (n + 1)
    s_now = np.exp(log_s_now)
    p_alive = still_buying * s_now / (still_buying * s_now + 1 - still_buying)
    # Median of the gap given that it exceeds e - 1: S(g) = S(e - 1) / 2.
    z_next = -special.ndtri_exp(log_s_now + np.log(0.5))
    next_gap = np.maximum(np.round(np.exp(m + s * z_next)), e)
    return state.with_columns(
        pl.Series("p_survival", p_alive * p_timing),
        pl.Series("next_gap_days", next_gap.astype(np.int64)),
        pl.Series("overdue_z", (np.log(e) - m) / s),
    )


FEATURES = (
    "survival log-odds",
    "log purchase days of the pair",
    "log days since the pair's last purchase",
    "overdue z (log elapsed - predicted log gap) / sd",
    "log days since the pair's first purchase",
    "log share of the customer's order days that include the product",
    "log1p order days of the customer",
    "log days since the customer's last order",
    "log days since the customer's first order",
    f"log1p buyers of the product in the last {RECENT_DAYS} days",
)


def design_matrix(state: pl.DataFrame) -> np.ndarray:
    """The logistic layer's inputs (see FEATURES), without an intercept column."""

    def col(name: str) -> np.ndarray:
        return state[name].to_numpy().astype(np.float64)

    p = np.clip(col("p_survival"), 1e-12, 1 - 1e-12)
    n = col("purchase_days")
    customer_days = col("customer_days")
    return np.column_stack(
        [
            np.clip(np.log(p) - np.log1p(-p), -LOGIT_CLIP, LOGIT_CLIP),
            np.log(n),
            np.log(col("elapsed_days")),
            np.clip(col("overdue_z"), -5, 5),
            np.log1p(col("pair_tenure")),
            np.log(n / customer_days),
            np.log1p(customer_days),
            np.log(col("customer_elapsed_days")),
            np.log1p(col("customer_tenure")),
            np.log1p(col("recent_buyers")),
        ]
    )


@dataclass(frozen=True)
class Calibration:
    """A fitted logistic layer: standardization of the features and coefficients."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # intercept first

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return special.expit(self.coef[0] + z @ self.coef[1:])


def prior_calibration(width: int) -> Calibration:
    """Use the survival probability as is: weight 1 on its log-odds, nothing else."""
    coef = np.zeros(width + 1)
    coef[1] = 1.0
    return Calibration(np.zeros(width), np.ones(width), coef)


def fit_calibration(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None = None,
    precision: float = PRIOR_PRECISION,
) -> Calibration:
    """MAP logistic regression with a N(prior, 1/precision) prior on each coefficient.

    Features other than the survival log-odds are standardized so one prior precision means
    the same for all; the log-odds is kept raw so that its prior weight of 1 means "as is".
    ``weight`` undoes the subsampling of negatives (inverse sampling rates).
    """
    w = np.ones(len(y)) if weight is None else weight
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    scale[scale == 0] = 1.0
    mean[0], scale[0] = 0.0, 1.0
    design = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    prior = prior_calibration(x.shape[1]).coef

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ b
        d = b - prior
        nll = w @ (np.logaddexp(0, eta) - y * eta)
        grad = design.T @ (w * (special.expit(eta) - y))
        return nll + 0.5 * precision * d @ d, grad + precision * d

    def hess(b: np.ndarray) -> np.ndarray:
        p = special.expit(design @ b)
        return design.T @ (design * (w * p * (1 - p))[:, None]) + precision * np.eye(len(b))

    # Newton steps in a trust region: a handful of iterations on a convex problem.
    res = optimize.minimize(loss, prior.copy(), jac=True, hess=hess, method="trust-exact")
    return Calibration(mean, scale, res.x)


def training_rows(
    daily: pl.DataFrame,
    usage: pl.DataFrame,
    as_of: dt.date,
    window_days: int,
    windows: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and row weights from the windows that end on or before ``as_of``.

    Window k starts at ``as_of - k * window_days``; its features see only purchases before
    that start, and its candidates are the pairs bought in the LOOKBACK_DAYS before it, like
    the backtest's. Windows are taken newest first until ENOUGH_POSITIVES labels are in.
    """
    xs, ys = [], []
    for k in range(1, windows + 1):
        if sum(y.sum() for y in ys) >= ENOUGH_POSITIVES:
            break
        start = as_of - dt.timedelta(days=window_days * k)
        end = start + dt.timedelta(days=window_days)
        before = daily.filter(pl.col("day") < start)
        if before.is_empty():
            continue
        state = pair_state(before, usage, start, window_days).filter(
            pl.col("elapsed_days") <= LOOKBACK_DAYS
        )
        bought = (
            daily.filter((pl.col("day") >= start) & (pl.col("day") < end))
            .select("pair")
            .unique()
            .with_columns(pl.lit(1.0).alias("label"))
        )
        state = state.join(bought, on="pair", how="left", maintain_order="left")
        xs.append(design_matrix(state))
        ys.append(state["label"].fill_null(0.0).to_numpy())
    if not xs:
        return np.empty((0, len(FEATURES))), np.empty(0), np.empty(0)
    x, y = np.vstack(xs), np.concatenate(ys)
    if len(y) <= MAX_TRAINING_ROWS:
        return x, y, np.ones(len(y))
    # Positives are rare and carry most of the information: keep them all (up to half the
    # rows) and fill the rest with negatives, each class weighted back by its sampling rate.
    # A fixed seed over rows in a fixed order keeps the fit reproducible.
    rng = np.random.default_rng(0)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n_pos = min(len(positives), MAX_TRAINING_ROWS // 2)
    n_neg = MAX_TRAINING_ROWS - n_pos
    keep = np.sort(
        np.concatenate(
            [
                rng.choice(positives, n_pos, replace=False),
                rng.choice(negatives, n_neg, replace=False),
            ]
        )
    )
    weight = np.where(y == 1, len(positives) / max(n_pos, 1), len(negatives) / n_neg)
    return x[keep], y[keep], weight[keep]


def predict(
    events: pl.DataFrame,
    products: pl.DataFrame | None,
    as_of: dt.date,
    window_days: int = 7,
    lead_days: int = 3,
    training_windows: int = TRAINING_WINDOWS,
) -> pl.DataFrame:
    """Next purchase and its probability in [as_of, as_of + window) for every pair bought before.

    ``events`` has customer_id, product_id, day (a date) and quantity; rows on or after
    ``as_of`` are ignored, so calling this for a past date is an honest backtest. ``products``
    may carry product_id and usage_days (the days one unit lasts). ``training_windows`` = 0
    skips the logistic layer and returns the survival model's probability.
    """
    purchases = encode_purchases(events, as_of)
    daily = purchases.daily
    if daily.is_empty():
        return pl.DataFrame(schema=OUTPUT_SCHEMA)
    usage = _usage_prior(products, purchases.products)
    state = pair_state(daily, usage, as_of, window_days)
    calibration = prior_calibration(len(FEATURES))
    if training_windows > 0:
        x, y, weight = training_rows(daily, usage, as_of, window_days, training_windows)
        positives = y.sum()
        # Too few labels of either kind to learn from: keep the survival model.
        if min(positives, len(y) - positives) >= MIN_TRAINING_POSITIVES:
            calibration = fit_calibration(x, y, weight)
    probability = calibration.predict(design_matrix(state))
    return (
        state.with_columns(
            pl.Series("probability_next_window", probability),
            (pl.col("last_purchase_date") + pl.duration(days=pl.col("next_gap_days"))).alias(
                "predicted_next_date"
            ),
            pl.col("log_gap_mean").exp().alias("expected_gap_days"),
        )
        .with_columns(
            (pl.col("elapsed_days") - pl.col("expected_gap_days")).alias("days_overdue"),
            # A reminder due in the past is sent now rather than never.
            pl.max_horizontal(
                pl.col("predicted_next_date") - pl.duration(days=lead_days), pl.lit(as_of)
            ).alias("reminder_date"),
        )
        .join(purchases.customers, on="customer")
        .join(purchases.products, on="product")
        .sort("customer_id", "product_id")
        .select(list(OUTPUT_SCHEMA))
    )


OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String,
    "product_id": pl.String,
    "last_purchase_date": pl.Date,
    "last_quantity": pl.Float64,
    "purchase_days": pl.UInt32,
    "elapsed_days": pl.Int64,
    "expected_gap_days": pl.Float64,
    "days_overdue": pl.Float64,
    "predicted_next_date": pl.Date,
    "probability_next_window": pl.Float64,
    "reminder_date": pl.Date,
}
