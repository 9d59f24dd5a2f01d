"""Telegram notifications for the day/night switch.

A notification is a courtesy, never a dependency: :meth:`Notifier.send` logs and swallows every failure so a flip
never fails because Telegram is down. The bot token is part of the URL (``/bot<token>/sendMessage``), so anything
that might echo the URL (exception text from requests/urllib3) is redacted before it is logged.
"""

from __future__ import annotations

import logging

import requests

log = logging.getLogger(__name__)

# Telegram caps a message at 4096 characters; a longer text is rejected outright, so trim instead.
MAX_TEXT = 4000


class Notifier:
    """Sends short texts to one Telegram chat. A no-op (``enabled`` False) without a bot token and chat id."""

    def __init__(
        self,
        api_base: str = "https://api.telegram.org",
        bot_token: str = "",
        chat_id: str = "",
        session: requests.Session | None = None,
        timeout: float = 5.0,
        prefix: str = "",
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._token = bot_token
        self.chat_id = chat_id
        # A plain session (no retry adapter): a short, single attempt keeps cron jobs from hanging on Telegram.
        self.session = session or requests.Session()
        self.timeout = timeout
        self.prefix = prefix

    def __repr__(self) -> str:  # never show the token
        return f"Notifier(enabled={self.enabled}, chat_id={self.chat_id!r})"

    @classmethod
    def from_config(cls, config, prefix: str = "", session: requests.Session | None = None) -> Notifier:
        return cls(config.telegram_api_base, config.telegram_bot_token, config.telegram_chat_id, session, prefix=prefix)

    @property
    def enabled(self) -> bool:
        return bool(self._token and self.chat_id)

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def send(self, text: str) -> bool:
        """Send `text`; True if Telegram accepted it. Never raises."""
        if not self.enabled:
            return False
        body = {"chat_id": self.chat_id, "text": (self.prefix + text)[:MAX_TEXT], "disable_web_page_preview": True}
        try:
            resp = self.session.post(f"{self.api_base}/bot{self._token}/sendMessage", json=body, timeout=self.timeout)
            try:
                payload = resp.json()
            except ValueError:
                payload = {}
            if resp.status_code != 200 or not payload.get("ok", False):
                detail = payload.get("description") or resp.reason or "no description"
                log.warning("telegram: not sent (HTTP %s: %s)", resp.status_code, self.redact(str(detail)))
                return False
        except Exception as exc:  # noqa: BLE001 - a notification must never break the caller
            log.warning("telegram: not sent (%s: %.200s)", type(exc).__name__, self.redact(str(exc)))
            return False
        log.info("telegram: sent")
        return True
