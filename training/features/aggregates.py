"""Per-client aggregates of the six history tables, vectorised with polars.

Each ``*_features`` function scans one table lazily (sentinels masked), groups by
SK_ID_CURR and returns the aggregates with their catalogue entries. Aggregates are split by
status (active/closed, approved/refused) and by a recent window where that carries signal:
a client's last year says more about repayment than their whole past.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from serving_core.application import safe_divide
from serving_core.catalog import FeatureInfo, Unit, aggregate_info
from serving_core.sentinels import mask_sentinels

RECENT_DAYS = 365
RECENT_MONTHS = 12
LATE_STATUSES = ("1", "2", "3", "4", "5")  # bureau_balance STATUS: months past due buckets


@dataclass
class AggregateSet:
    """Named aggregate expressions of one table, built together with their labels."""

    prefix: str
    source: str
    exprs: list[pl.Expr] = field(default_factory=list)
    infos: list[FeatureInfo] = field(default_factory=list)

    def add(
        self,
        name: str,
        expr: pl.Expr,
        what: tuple[str, str],
        how: str,
        subset: str = "",
        unit: Unit = "",
    ) -> None:
        full = f"{self.prefix}_{name}" + (f"_{subset.upper()}" if subset else "")
        self.exprs.append(expr.cast(pl.Float64).alias(full))
        self.infos.append(aggregate_info(full, self.source, what, how, subset, unit))

    def stats(
        self,
        column: str,
        what: tuple[str, str],
        hows: tuple[str, ...],
        unit: Unit = "",
        subset: str = "",
        where: pl.Expr | None = None,
    ) -> None:
        values = pl.col(column) if where is None else pl.col(column).filter(where)
        for how in hows:
            self.add(f"{column}_{how.upper()}", getattr(values, how)(), what, how, subset, unit)

    def count(self, what: tuple[str, str], subset: str = "", where: pl.Expr | None = None) -> None:
        expr = pl.len() if where is None else where.sum()
        self.add("COUNT", expr, what, "count", subset, "count")


Built = tuple[pl.LazyFrame, list[FeatureInfo]]


def _scan(tables_dir: Path, table: str) -> pl.LazyFrame:
    return mask_sentinels(pl.scan_parquet(tables_dir / f"{table}.parquet"), table)


def bureau_features(tables_dir: Path) -> Built:
    bureau = _scan(tables_dir, "bureau").with_columns(
        safe_divide(pl.col("AMT_CREDIT_SUM_DEBT"), pl.col("AMT_CREDIT_SUM")).alias("DEBT_RATIO")
    )
    active = pl.col("CREDIT_ACTIVE") == "Active"
    closed = pl.col("CREDIT_ACTIVE") == "Closed"
    recent = pl.col("DAYS_CREDIT") >= -RECENT_DAYS
    a = AggregateSet("BUREAU", "bureau")
    a.count(("credits reported", "crédits déclarés"))
    a.count(("credits reported", "crédits déclarés"), "active", active)
    a.count(("credits reported", "crédits déclarés"), "closed", closed)
    a.count(("credits reported", "crédits déclarés"), "recent", recent)
    a.stats(
        "DAYS_CREDIT",
        ("time since credit opened", "ancienneté du crédit"),
        ("mean", "min", "max"),
        "days",
    )
    a.stats(
        "DAYS_CREDIT_ENDDATE",
        ("remaining duration", "durée restante"),
        ("mean", "max"),
        "days",
        "active",
        active,
    )
    a.stats("CREDIT_DAY_OVERDUE", ("days overdue", "jours de retard"), ("max", "mean"), "day_count")
    a.stats(
        "AMT_CREDIT_MAX_OVERDUE",
        ("amount ever overdue", "montant en retard le plus élevé"),
        ("max",),
        "money",
    )
    a.stats("CNT_CREDIT_PROLONG", ("prolongations", "prolongations"), ("sum",), "count")
    a.stats("AMT_CREDIT_SUM", ("credit amount", "montant de crédit"), ("sum", "mean"), "money")
    for subset, where in (("active", active), ("closed", closed)):
        a.stats(
            "AMT_CREDIT_SUM",
            ("credit amount", "montant de crédit"),
            ("sum",),
            "money",
            subset,
            where,
        )
    a.stats(
        "AMT_CREDIT_SUM_DEBT",
        ("current debt", "dette en cours"),
        ("sum", "mean"),
        "money",
        "active",
        active,
    )
    a.stats(
        "AMT_CREDIT_SUM_OVERDUE",
        ("amount overdue", "montant en retard"),
        ("sum",),
        "money",
        "active",
        active,
    )
    a.stats(
        "DEBT_RATIO",
        ("debt as a share of credit", "dette en part du crédit"),
        ("mean", "max"),
        "share",
        "active",
        active,
    )
    a.stats("AMT_ANNUITY", ("annuity", "annuité"), ("sum",), "money", "active", active)
    a.stats(
        "AMT_CREDIT_SUM",
        ("credit amount", "montant de crédit"),
        ("sum",),
        "money",
        "recent",
        recent,
    )
    a.add(
        "CREDIT_CARD_SHARE",
        (pl.col("CREDIT_TYPE") == "Credit card").mean(),
        ("credit cards", "cartes de crédit"),
        "share",
        unit="share",
    )
    a.add(
        "MICROLOAN_COUNT",
        (pl.col("CREDIT_TYPE") == "Microloan").sum(),
        ("microloans", "microcrédits"),
        "count",
        unit="count",
    )
    frame = bureau.group_by("SK_ID_CURR").agg(a.exprs)
    return frame, a.infos


def bureau_balance_features(tables_dir: Path) -> Built:
    balance = pl.scan_parquet(tables_dir / "bureau_balance.parquet").with_columns(
        pl.col("STATUS").is_in(LATE_STATUSES).cast(pl.Float64).alias("LATE"),
        pl.when(pl.col("STATUS").is_in(LATE_STATUSES))
        .then(pl.col("STATUS").cast(pl.Int64, strict=False))
        .otherwise(0)
        .alias("STATUS_LEVEL"),
        (pl.col("MONTHS_BALANCE") >= -RECENT_MONTHS).alias("RECENT"),
    )
    per_credit = balance.group_by("SK_ID_BUREAU").agg(
        pl.len().alias("MONTHS"),
        pl.col("LATE").mean().alias("LATE_SHARE"),
        pl.col("LATE").filter(pl.col("RECENT")).mean().alias("LATE_SHARE_RECENT"),
        pl.col("STATUS_LEVEL").max().alias("WORST_STATUS"),
    )
    links = pl.scan_parquet(tables_dir / "bureau.parquet").select("SK_ID_CURR", "SK_ID_BUREAU")
    joined = per_credit.join(links, on="SK_ID_BUREAU", how="inner")
    a = AggregateSet("BB", "bureau_balance")
    a.stats(
        "MONTHS",
        ("months reported per credit", "mois déclarés par crédit"),
        ("mean", "sum"),
        "count",
    )
    a.stats(
        "LATE_SHARE",
        ("share of months past due", "part des mois en retard"),
        ("mean", "max"),
        "share",
    )
    a.add(
        "LATE_SHARE_MEAN",
        pl.col("LATE_SHARE_RECENT").mean(),
        ("share of months past due", "part des mois en retard"),
        "mean",
        "recent",
        "share",
    )
    a.stats(
        "WORST_STATUS",
        ("worst lateness level (0-5)", "pire niveau de retard (0-5)"),
        ("max", "mean"),
        "score",
    )
    frame = joined.group_by("SK_ID_CURR").agg(a.exprs)
    return frame, a.infos


def previous_application_features(tables_dir: Path) -> Built:
    previous = _scan(tables_dir, "previous_application").with_columns(
        safe_divide(pl.col("AMT_APPLICATION"), pl.col("AMT_CREDIT")).alias("APPLICATION_CREDIT")
    )
    approved = pl.col("NAME_CONTRACT_STATUS") == "Approved"
    refused = pl.col("NAME_CONTRACT_STATUS") == "Refused"
    recent = pl.col("DAYS_DECISION") >= -RECENT_DAYS
    a = AggregateSet("PREV", "previous_application")
    a.count(("previous applications", "demandes précédentes"))
    a.count(("previous applications", "demandes précédentes"), "approved", approved)
    a.count(("previous applications", "demandes précédentes"), "refused", refused)
    a.count(("previous applications", "demandes précédentes"), "recent", recent)
    a.add(
        "REFUSED_SHARE",
        refused.mean(),
        ("applications refused", "demandes refusées"),
        "share",
        unit="share",
    )
    a.add(
        "REFUSED_SHARE",
        refused.filter(recent).mean(),
        ("applications refused", "demandes refusées"),
        "share",
        "recent",
        "share",
    )
    for subset, where in (("approved", approved), ("refused", refused)):
        a.stats(
            "AMT_CREDIT",
            ("credit amount", "montant du crédit"),
            ("mean", "max"),
            "money",
            subset,
            where,
        )
        a.stats(
            "APPLICATION_CREDIT",
            ("amount asked / granted", "montant demandé / accordé"),
            ("mean",),
            "ratio",
            subset,
            where,
        )
        a.stats(
            "DAYS_DECISION",
            ("time since decision", "ancienneté de la décision"),
            ("max",),
            "days",
            subset,
            where,
        )
    a.stats("AMT_ANNUITY", ("annuity", "annuité"), ("mean",), "money", "approved", approved)
    a.stats(
        "CNT_PAYMENT", ("term in months", "durée en mois"), ("mean",), "count", "approved", approved
    )
    a.stats("RATE_DOWN_PAYMENT", ("down-payment rate", "taux d'apport"), ("mean",), "share")
    a.stats(
        "DAYS_LAST_DUE_1ST_VERSION",
        ("planned last due date", "dernière échéance prévue"),
        ("max",),
        "days",
        "approved",
        approved,
    )
    a.add(
        "INSURED_SHARE",
        pl.col("NFLAG_INSURED_ON_APPROVAL").mean(),
        ("loans with insurance", "prêts assurés"),
        "share",
        unit="share",
    )
    frame = previous.group_by("SK_ID_CURR").agg(a.exprs)
    return frame, a.infos


def pos_cash_features(tables_dir: Path) -> Built:
    pos = _scan(tables_dir, "POS_CASH_balance")
    recent = pl.col("MONTHS_BALANCE") >= -RECENT_MONTHS
    a = AggregateSet("POS", "POS_CASH_balance")
    a.count(("monthly records", "relevés mensuels"))
    a.stats("SK_DPD", ("days past due", "jours de retard"), ("max", "mean"), "day_count")
    a.stats(
        "SK_DPD_DEF",
        ("days past due (tolerance applied)", "jours de retard (avec tolérance)"),
        ("max", "mean"),
        "day_count",
    )
    a.stats(
        "SK_DPD", ("days past due", "jours de retard"), ("mean",), "day_count", "recent", recent
    )
    a.add(
        "LATE_SHARE",
        (pl.col("SK_DPD") > 0).mean(),
        ("months past due", "mois en retard"),
        "share",
        unit="share",
    )
    a.stats(
        "CNT_INSTALMENT_FUTURE",
        ("instalments left", "échéances restantes"),
        ("mean",),
        "count",
        "recent",
        recent,
    )
    a.add(
        "COMPLETED_COUNT",
        (pl.col("NAME_CONTRACT_STATUS") == "Completed").sum(),
        ("completed contracts", "contrats terminés"),
        "count",
        unit="count",
    )
    a.add("LOANS_COUNT", pl.col("SK_ID_PREV").n_unique(), ("loans", "prêts"), "count", unit="count")
    frame = pos.group_by("SK_ID_CURR").agg(a.exprs)
    return frame, a.infos


def installments_features(tables_dir: Path) -> Built:
    paid_late = pl.col("DAYS_ENTRY_PAYMENT") - pl.col("DAYS_INSTALMENT")
    inst = _scan(tables_dir, "installments_payments").with_columns(
        safe_divide(pl.col("AMT_PAYMENT"), pl.col("AMT_INSTALMENT")).alias("PAID_SHARE"),
        (pl.col("AMT_INSTALMENT") - pl.col("AMT_PAYMENT")).alias("PAID_DIFF"),
        paid_late.clip(lower_bound=0).alias("DPD"),
        (-paid_late).clip(lower_bound=0).alias("DBD"),
    )
    recent = pl.col("DAYS_INSTALMENT") >= -RECENT_DAYS
    a = AggregateSet("INST", "installments_payments")
    a.count(("instalments", "échéances"))
    a.stats(
        "PAID_SHARE",
        ("share of the instalment paid", "part de l'échéance payée"),
        ("mean", "min"),
        "share",
    )
    a.stats("PAID_DIFF", ("amount left unpaid", "montant impayé"), ("mean", "max", "sum"), "money")
    a.stats("DPD", ("days paid late", "jours de retard de paiement"), ("mean", "max"), "day_count")
    a.stats("DBD", ("days paid early", "jours payés en avance"), ("mean",), "day_count")
    a.add(
        "LATE_SHARE",
        (pl.col("DPD") > 0).mean(),
        ("instalments paid late", "échéances payées en retard"),
        "share",
        unit="share",
    )
    a.stats(
        "DPD",
        ("days paid late", "jours de retard de paiement"),
        ("mean",),
        "day_count",
        "recent",
        recent,
    )
    a.stats(
        "PAID_SHARE",
        ("share of the instalment paid", "part de l'échéance payée"),
        ("mean",),
        "share",
        "recent",
        recent,
    )
    frame = inst.group_by("SK_ID_CURR").agg(a.exprs)
    return frame, a.infos


def credit_card_features(tables_dir: Path) -> Built:
    cards = _scan(tables_dir, "credit_card_balance").with_columns(
        safe_divide(pl.col("AMT_BALANCE"), pl.col("AMT_CREDIT_LIMIT_ACTUAL")).alias("USE"),
        safe_divide(pl.col("AMT_PAYMENT_CURRENT"), pl.col("AMT_INST_MIN_REGULARITY")).alias(
            "PAID_MIN"
        ),
    )
    recent = pl.col("MONTHS_BALANCE") >= -RECENT_MONTHS
    a = AggregateSet("CC", "credit_card_balance")
    a.count(("monthly records", "relevés mensuels"))
    a.stats("AMT_BALANCE", ("balance", "solde"), ("mean", "max"), "money")
    a.stats(
        "USE", ("share of the limit used", "part du plafond utilisée"), ("mean", "max"), "share"
    )
    a.stats(
        "USE",
        ("share of the limit used", "part du plafond utilisée"),
        ("mean",),
        "share",
        "recent",
        recent,
    )
    a.stats("AMT_DRAWINGS_CURRENT", ("monthly drawings", "retraits mensuels"), ("mean",), "money")
    a.stats("CNT_DRAWINGS_CURRENT", ("drawings per month", "retraits par mois"), ("mean",), "count")
    a.stats("PAID_MIN", ("payment / minimum due", "paiement / minimum dû"), ("mean",), "ratio")
    a.stats("SK_DPD", ("days past due", "jours de retard"), ("max", "mean"), "day_count")
    frame = cards.group_by("SK_ID_CURR").agg(a.exprs)
    return frame, a.infos


# In pipeline order; the name is the table that drives the progress line.
TABLE_FEATURES: tuple[tuple[str, Callable[[Path], Built]], ...] = (
    ("bureau", bureau_features),
    ("bureau_balance", bureau_balance_features),
    ("previous_application", previous_application_features),
    ("POS_CASH_balance", pos_cash_features),
    ("installments_payments", installments_features),
    ("credit_card_balance", credit_card_features),
)
