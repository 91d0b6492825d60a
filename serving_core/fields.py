"""The typed fields of a new application: their wire name and the Kaggle column they carry.

One definition for every door: the gRPC contract (``credit.v1.Application``), the REST
schema (``services.gateway.schemas.Application``) and the dashboard's what-if form all name
these fields; tests/test_application_fields.py checks that the proto and the REST schema
declare exactly these. Ranges come from ``serving_core.ranges``, categories from Kaggle's
data dictionary. Standard library only: every image may import it.
"""

from __future__ import annotations

# Wire field -> Kaggle column (application table), in the proto's order.
TYPED_FIELDS: dict[str, str] = {
    "contract_type": "NAME_CONTRACT_TYPE",
    "amt_income_total": "AMT_INCOME_TOTAL",
    "amt_credit": "AMT_CREDIT",
    "amt_annuity": "AMT_ANNUITY",
    "amt_goods_price": "AMT_GOODS_PRICE",
    "days_birth": "DAYS_BIRTH",
    "days_employed": "DAYS_EMPLOYED",
    "cnt_children": "CNT_CHILDREN",
    "cnt_fam_members": "CNT_FAM_MEMBERS",
    "code_gender": "CODE_GENDER",
    "flag_own_car": "FLAG_OWN_CAR",
    "flag_own_realty": "FLAG_OWN_REALTY",
    "name_income_type": "NAME_INCOME_TYPE",
    "name_education_type": "NAME_EDUCATION_TYPE",
    "name_family_status": "NAME_FAMILY_STATUS",
    "name_housing_type": "NAME_HOUSING_TYPE",
    "occupation_type": "OCCUPATION_TYPE",
    "organization_type": "ORGANIZATION_TYPE",
    "ext_source_1": "EXT_SOURCE_1",
    "ext_source_2": "EXT_SOURCE_2",
    "ext_source_3": "EXT_SOURCE_3",
}
# Kaggle column -> wire field.
FIELD_OF_COLUMN: dict[str, str] = {column: field for field, column in TYPED_FIELDS.items()}
# What every new application must give (the rest may be left out: scored as missing).
REQUIRED = ("contract_type", "amt_income_total", "amt_credit", "amt_annuity", "days_birth")
# Beside the typed fields: the optional client id (SK_ID_CURR) and two free-form maps, any
# other application column by its name.
EXTRA_MAPS = ("numeric_fields", "category_fields")
