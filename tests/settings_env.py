"""Which environment variables each settings class of the platform reads, and for what.

Computed by pydantic-settings' own environment source (``EnvSettingsSource``), not by a
second reading of the rules: a field is read from every string alias it declares, and also
from ``env_prefix + field name`` when it has no alias *or* the class sets
``populate_by_name`` (so ``FeatureStoreSettings.data_dir``, aliased to FEATURE_STORE_DIR,
still read DATA_DIR). Names are compared upper-case: the settings are case-insensitive.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, EnvSettingsSource

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("credit", "serving_core", "services", "training")
SETTINGS_MODULES = (
    "credit.settings",
    "services.common.settings",
    "services.scoring.settings",
    "services.explainer.settings",
    "services.gateway.settings",
    "services.ui.settings",
    "serving_core.feature_store.settings",
)


@dataclass(frozen=True)
class EnvClaim:
    """One environment name one settings class reads into one of its fields."""

    env: str  # upper case
    reader: str  # module.Class that reads it
    meaning: str  # module.Class.field where the field is declared (inherited: the base's)


def settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass defined in the platform's packages."""
    for module in SETTINGS_MODULES:
        importlib.import_module(module)
    found: list[type[BaseSettings]] = []
    stack = list(BaseSettings.__subclasses__())
    while stack:
        cls = stack.pop()
        stack += cls.__subclasses__()
        if cls.__module__.split(".")[0] in PACKAGES and cls not in found:
            found.append(cls)
    return found


def declared_settings_classes() -> set[str]:
    """``module.Class`` of every class in the packages' sources deriving (directly or through
    another one found here) from BaseSettings: what settings_classes() must have found."""
    bases: dict[str, tuple[str, set[str]]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    names = {
                        b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases
                    }
                    bases[f"{module}.{node.name}"] = (node.name, names)
    settings = {"BaseSettings"}
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for qualified, (name, names) in bases.items():
            if qualified not in found and names & settings:
                found.add(qualified)
                settings.add(name)
                changed = True
    return found


def _meaning(cls: type[BaseSettings], field: str) -> str:
    # The class that first declares the field: a subclass inheriting it (the gRPC services'
    # shared fields) reads it with the same meaning.
    owner = next(k for k in reversed(cls.__mro__) if field in vars(k).get("__annotations__", {}))
    return f"{owner.__module__}.{owner.__qualname__}.{field}"


def env_claims() -> list[EnvClaim]:
    claims = []
    for cls in settings_classes():
        # _extract_field_info is how the source itself lists a field's environment names.
        source = EnvSettingsSource(cls)
        for name, info in cls.model_fields.items():
            for _key, env, _complex in source._extract_field_info(info, name):
                claims.append(
                    EnvClaim(
                        env=env.upper(),
                        reader=f"{cls.__module__}.{cls.__qualname__}",
                        meaning=_meaning(cls, name),
                    )
                )
    return claims


def settings_env_names() -> set[str]:
    return {claim.env for claim in env_claims()}
