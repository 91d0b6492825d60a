"""Settings of the advisor dashboard: one typed object, environment variables prefixed UI_."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ui.accounts import SignIn, parse_users


class UISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UI_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)
    gateway_url: str = "http://127.0.0.1:8000"
    gateway_api_key: SecretStr | None = Field(
        None, description="The dashboard's own gateway key; wins over the key file."
    )
    gateway_api_key_file: Path = Field(
        Path(".dev/api-key"), description="File holding the key (e.g. a mounted secret)."
    )
    users: SecretStr | None = Field(
        None,
        description="Advisor accounts, 'user:scrypt-hash' entries separated by commas "
        "(`credit dashboard hash-password`); required outside development mode.",
    )
    dev_mode: bool = Field(
        False,
        description="Development mode (make up): the demo account advisor/demo when "
        "UI_USERS is unset, and plain passwords. Never on a shared deployment.",
    )
    timeout_seconds: float = Field(20.0, gt=0, description="Timeout of one gateway call.")
    default_lang: Literal["en", "fr"] = "en"
    currency: str = Field(
        "EUR",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the amounts in the data (Home Credit's public data "
        "does not name one); shown with every amount.",
    )
    neighbours: int = Field(
        30, ge=5, le=50, description="Unused: the API fixes the comparison group at 30."
    )

    def api_key(self) -> str:
        """Read at start, kept server-side: the browser never sees it."""
        if self.gateway_api_key is not None:
            key = self.gateway_api_key.get_secret_value().strip()
        else:
            try:
                key = self.gateway_api_key_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise RuntimeError(
                    f"no gateway API key: set UI_GATEWAY_API_KEY or UI_GATEWAY_API_KEY_FILE "
                    f"({self.gateway_api_key_file}: {error.strerror})"
                ) from error
        if not key:  # an empty mounted Secret item: every call would be refused
            raise RuntimeError("no gateway API key: UI_GATEWAY_API_KEY(_FILE) is empty")
        return key

    def sign_in(self) -> SignIn:
        """The sign-in check; refuses (ValueError) built-in or plain-text credentials
        outside development mode, so the dashboard does not start with them."""
        raw = self.users.get_secret_value() if self.users is not None else None
        return SignIn(parse_users(raw, self.dev_mode))
